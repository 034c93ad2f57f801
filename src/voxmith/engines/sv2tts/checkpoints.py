"""The official SV2TTS checkpoint files: where they are on this machine, and fetching them.

Real-Time-Voice-Cloning's `utils/default_models.py` downloads `encoder.pt`, `synthesizer.pt` and
`vocoder.pt` from the Hugging Face repository `CorentinJ/SV2TTS` (revision main) into
`saved_models/default/` and accepts a file only at its exact size; voxmith does the same with the
shared downloader (resumable, atomic, sha256 checked against what the hub declares).

Existing copies are reused. Folders searched, in order:
1. an explicit folder (`--models-dir`), 2. $VOXMITH_SV2TTS_MODELS, 3. the workspace's
`models/sv2tts/`, 4. `saved_models/default/` in the current folder (a Real-Time-Voice-Cloning
checkout) and in `~/Real-Time-Voice-Cloning/`, 5. the Hugging Face hub cache, and, for encoder.pt
only, 6. the `resemblyzer` package, whose bundled `pretrained.pt` is the very same file (its sha256
is the one the hub lists for encoder.pt; checked before it is used).
A folder may hold the files flat, in `saved_models/default/` or `default/` below it, or in the hub
cache layout. A file counts only at its official size (a cut-off copy is ignored, as officially).
New downloads go, flat, to the first of 1-3 that applies. The download source is
`$VOXMITH_SV2TTS_BASE_URL/<name>` when set (a mirror, or a test server).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from voxmith.download import download_file, hf_hub_cache, search_folders, size_text
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback

REPO_ID = "CorentinJ/SV2TTS"
REVISION = "main"
DEFAULT_ENDPOINT = "https://huggingface.co"
HF_CACHE_FOLDER = "models--CorentinJ--SV2TTS"


@dataclass(frozen=True)
class Checkpoint:
    name: str
    size_bytes: int  # the official size; a file of another size is not this checkpoint
    purpose: str
    # The content hash the hub lists for the file (checked after a download; None: the hash the
    # server declares while sending it is checked instead).
    sha256: Optional[str] = None


CHECKPOINTS: Tuple[Checkpoint, ...] = (
    Checkpoint("encoder.pt", 17_090_379, "speaker encoder (voice embedding)",
               "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"),
    Checkpoint("synthesizer.pt", 370_554_559, "Tacotron synthesizer (text to mel)"),
    Checkpoint("vocoder.pt", 53_845_290, "WaveRNN vocoder (mel to audio)",
               "1d7a6861589e927e0fbdaa5849ca022258fe2b58a20cc7bfb8fb598ccf936169"),
)
BY_NAME: Dict[str, Checkpoint] = {c.name: c for c in CHECKPOINTS}
NAMES: Tuple[str, ...] = tuple(c.name for c in CHECKPOINTS)


@dataclass(frozen=True)
class Location:
    path: Path
    source: str  # which search rule found it




def search_dirs(models_dir: Optional[os.PathLike] = None,
                workspace_models: Optional[os.PathLike] = None) -> List[Tuple[Path, str]]:
    """The folders searched, most specific first, as (folder, label)."""
    candidates = [
        (models_dir, "--models-dir"),
        (os.environ.get("VOXMITH_SV2TTS_MODELS"), "VOXMITH_SV2TTS_MODELS"),
        (Path(workspace_models) / "sv2tts" if workspace_models else None, "workspace"),
        (Path.cwd() / "saved_models" / "default", "saved_models/default"),
        (Path.home() / "Real-Time-Voice-Cloning" / "saved_models" / "default", "Real-Time-Voice-Cloning"),
        (hf_hub_cache(), "Hugging Face cache"),
    ]
    return search_folders(candidates)


def _is_official(path: Path, name: str) -> bool:
    try:
        return path.is_file() and path.stat().st_size == BY_NAME[name].size_bytes
    except OSError:
        return False


def _find_in(folder: Path, name: str) -> Optional[Path]:
    for candidate in (folder / name, folder / "saved_models" / "default" / name, folder / "default" / name):
        if _is_official(candidate, name):
            return candidate
    snapshots = folder / HF_CACHE_FOLDER / "snapshots"
    if snapshots.is_dir():
        for snapshot in sorted(snapshots.iterdir(), key=lambda p: -p.stat().st_mtime):
            if _is_official(snapshot / name, name):
                return snapshot / name
    return None


def _check_names(names: Sequence[str]) -> None:
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise VoxmithError(f"Unknown sv2tts checkpoint(s): {', '.join(unknown)}. Known files: {', '.join(NAMES)}.")


def find_checkpoint(name: str, models_dir=None, workspace_models=None) -> Optional[Location]:
    _check_names([name])
    for folder, label in search_dirs(models_dir, workspace_models):
        path = _find_in(folder, name)
        if path is not None:
            return Location(path, label)
    if name == "encoder.pt":
        path = resemblyzer_encoder()
        if path is not None:
            return Location(path, "resemblyzer package")
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=4)
def _hash_of(path: str, size: int, mtime_ns: int) -> str:  # re-hashed only when the file changes
    return file_sha256(Path(path))


def cached_sha256(path: Path) -> str:
    """sha256 of a file, computed once per (path, size, modification time) in this process."""
    stat = path.stat()
    return _hash_of(str(path), stat.st_size, stat.st_mtime_ns)


def resemblyzer_encoder() -> Optional[Path]:
    """resemblyzer's bundled encoder weights when they are byte for byte the official encoder.pt."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.origin:
        return None
    path = Path(spec.origin).parent / "pretrained.pt"
    entry = BY_NAME["encoder.pt"]
    if not _is_official(path, "encoder.pt"):
        return None
    return path if entry.sha256 is None or cached_sha256(path) == entry.sha256 else None


def find_checkpoints(names: Sequence[str] = NAMES, models_dir=None, workspace_models=None) -> Dict[str, Optional[Location]]:
    return {name: find_checkpoint(name, models_dir, workspace_models) for name in names}


def download_dir(models_dir=None, workspace_models=None) -> Path:
    """Where new downloads go: the explicit folder, $VOXMITH_SV2TTS_MODELS, else the workspace."""
    for folder in (models_dir, os.environ.get("VOXMITH_SV2TTS_MODELS")):
        if folder:
            return Path(folder).expanduser()
    if workspace_models:
        return Path(workspace_models) / "sv2tts"
    return Path.home() / ".cache" / "voxmith" / "sv2tts"


def checkpoint_url(name: str) -> str:
    """`$VOXMITH_SV2TTS_BASE_URL/<name>`, else the file in CorentinJ/SV2TTS at main on the hub
    ($HF_ENDPOINT honoured), the URL `hf_hub_download` resolves for the official code."""
    _check_names([name])
    base = os.environ.get("VOXMITH_SV2TTS_BASE_URL")
    if base:
        return f"{base.rstrip('/')}/{name}"
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    return f"{endpoint}/{REPO_ID}/resolve/{REVISION}/{name}"


def missing_message(names: Sequence[str], models_dir=None, workspace_models=None) -> str:
    total = sum(BY_NAME[n].size_bytes for n in names)
    return (f"The sv2tts engine needs the official checkpoint(s) {', '.join(names)} (~{size_text(total)}), "
            f"which are not on this machine. Run `voxmith models download sv2tts`, or put the files from "
            f"https://huggingface.co/{REPO_ID} (or a Real-Time-Voice-Cloning saved_models/default/ folder) "
            f"in {download_dir(models_dir, workspace_models)}.")


def download_checkpoints(names: Sequence[str], folder: os.PathLike,
                         progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
    """Download `names` into `folder` (flat), resuming partial files; each must have its official size."""
    _check_names(names)
    folder = Path(folder).expanduser()
    paths = {}
    for name in names:
        url = checkpoint_url(name)
        token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
        endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token and url.startswith(endpoint + "/") else {}
        paths[name] = download_file(url, folder / name, expected_size=BY_NAME[name].size_bytes,
                                    expected_sha256=BY_NAME[name].sha256, progress=progress,
                                    stage=f"downloading {name}", headers=headers,
                                    offline_hint=(f"download the files elsewhere (https://huggingface.co/{REPO_ID}) "
                                                  f"and put them in {folder}, or set VOXMITH_SV2TTS_MODELS to the "
                                                  "folder that holds them"))
    return paths


def ensure_checkpoints(names: Sequence[str] = NAMES, models_dir=None, workspace_models=None,
                       download: bool = False, progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
    """name -> path for every name; missing files are downloaded when `download`, else refused with
    a message naming `voxmith models download sv2tts`."""
    found = find_checkpoints(names, models_dir, workspace_models)
    missing = [n for n, where in found.items() if where is None]
    paths = {n: where.path for n, where in found.items() if where is not None}
    if missing and not download:
        raise VoxmithError(missing_message(missing, models_dir, workspace_models))
    if missing:
        paths.update(download_checkpoints(missing, download_dir(models_dir, workspace_models), progress))
    return {n: paths[n] for n in names}
