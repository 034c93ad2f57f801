"""Which GPT-SoVITS version a SoVITS (`s2G*.pth`) file is, decided the way the official loader decides
(`GPT_SoVITS/process_ckpt.py: get_sovits_version_from_path_fast`), in this order:

1. the MD5 of the file's first 8 KB, for the known pretrained files;
2. the first two bytes: files saved by the official trainer for v3/v4 LoRA and v2Pro/v2ProPlus carry a
   version tag (`03`..`06`) in place of the zip magic `PK` (restored before loading, see
   `sovits_checkpoint.read_sovits_file`);
3. the file size for older untagged files: under 82,978 KiB is v1, under 700 MiB v2, above that v3.

Pure Python, no torch. `SUPPORTED` lists what voxmith can run today; the rest is recognised so that
the error can say what the file is.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

ZIP_MAGIC = b"PK"
HEAD_BYTES = 8192


@dataclass(frozen=True)
class SoVITSVersion:
    model_version: str     # v1, v2, v2Pro, v2ProPlus, v3, v4
    symbols_version: str   # the phone table the model was trained with: v1 (322 symbols) or v2 (732)
    is_lora: bool = False  # a v3/v4 LoRA that needs its base model

    @property
    def is_pro(self) -> bool:
        return self.model_version in ("v2Pro", "v2ProPlus")

    @property
    def supported(self) -> bool:
        return self.model_version in SUPPORTED and not self.is_lora


SUPPORTED = ("v2", "v2Pro", "v2ProPlus")

# Version tags that replace the zip magic (official `head2version`).
MAGIC_VERSIONS = {
    b"00": SoVITSVersion("v1", "v1"),
    b"01": SoVITSVersion("v2", "v2"),
    b"02": SoVITSVersion("v3", "v2"),
    b"03": SoVITSVersion("v3", "v2", is_lora=True),
    b"04": SoVITSVersion("v4", "v2", is_lora=True),
    b"05": SoVITSVersion("v2Pro", "v2"),
    b"06": SoVITSVersion("v2ProPlus", "v2"),
}
# Tags written when saving (official `model_version2byte`).
VERSION_MAGIC = {"v3": b"03", "v4": b"04", "v2Pro": b"05", "v2ProPlus": b"06"}

# MD5 of the first 8 KB of the published pretrained SoVITS files (official `hash_pretrained_dict`).
PRETRAINED_MD5 = {
    "dc3c97e17592963677a4a1681f30c653": SoVITSVersion("v2", "v2"),          # s2G488k.pth (v1 release)
    "43797be674a37c1c83ee81081941ed0f": SoVITSVersion("v3", "v2"),          # s2Gv3.pth
    "6642b37f3dbb1f76882b69937c95a5f3": SoVITSVersion("v2", "v2"),          # s2G2333k.pth
    "4f26b9476d0c5033e04162c486074374": SoVITSVersion("v4", "v2"),          # s2Gv4.pth
    "c7e9fce2223f3db685cdfa1e6368728a": SoVITSVersion("v2Pro", "v2"),       # s2Gv2Pro.pth
    "66b313e39455b57ab1b0bc0b239c9d0a": SoVITSVersion("v2ProPlus", "v2"),   # s2Gv2ProPlus.pth
}

V1_MAX_BYTES = 82978 * 1024       # untagged files below this are v1 (about 82,942 KiB half precision)
V2_MAX_BYTES = 700 * 1024 * 1024  # untagged files above this are v3 (about 750 MB)


def head_md5(path: str | os.PathLike) -> str:
    with open(path, "rb") as f:
        return hashlib.md5(f.read(HEAD_BYTES)).hexdigest()


def detect_sovits_version(path: str | os.PathLike) -> SoVITSVersion:
    """The version of a SoVITS file by hash, tag or size (see the module docstring).

    Raises ValueError for a file whose first two bytes are neither the zip magic nor a known tag.
    """
    path = Path(path)
    known = PRETRAINED_MD5.get(head_md5(path))
    if known is not None:
        return known
    with open(path, "rb") as f:
        head = f.read(2)
    if head != ZIP_MAGIC:
        if head not in MAGIC_VERSIONS:
            raise ValueError(f"{path.name} is not a GPT-SoVITS SoVITS checkpoint (starts with {head!r})")
        return MAGIC_VERSIONS[head]
    size = path.stat().st_size
    if size < V1_MAX_BYTES:
        return SoVITSVersion("v1", "v1")
    if size < V2_MAX_BYTES:
        return SoVITSVersion("v2", "v2")
    return SoVITSVersion("v3", "v2")
