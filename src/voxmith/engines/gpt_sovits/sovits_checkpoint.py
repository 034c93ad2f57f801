"""Load an official GPT-SoVITS SoVITS file (`s2G*.pth`) into voxmith's `SoVITS`.

A file is a torch pickle `{"weight": state_dict, "config": hparams, "info": str}`; v2Pro/v2ProPlus
(and v3/v4 LoRA) files have their first two bytes overwritten by a version tag, restored to `PK` here
before loading. `config` is the trainer's hyper-parameters, pickled either as a dict or as the official
`utils.HParams` object: it is read with torch's safe (weights-only) unpickler, with `utils.HParams`
mapped to a plain attribute holder, so loading a file never runs code from it.

Weights: inference files omit the posterior encoder `enc_q` (official `savee`); pretrained files may
keep it, and it is dropped unless the model wants it (training). Weight-norm pairs
(`weight_g`/`weight_v`) are folded into plain weights. v1 files (322-symbol table) and v3/v4 files are
recognised and refused with a message; `load_sovits` is the place a v3/v4 model class will plug in.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from voxmith.errors import VoxmithError

from .sovits import SoVITS, SoVITSConfig
from .versions import VERSION_MAGIC, ZIP_MAGIC, SoVITSVersion, detect_sovits_version

V1_SYMBOLS = 322
WEIGHT_NORM_PREFIXES = ("dec.ups.", "dec.resblocks.")   # plus every WaveNet layer (`.enc.` stacks)


class SoVITSCheckpointError(VoxmithError):
    """A SoVITS file that cannot be used: unreadable, damaged, or of a version voxmith cannot run."""


class _HParams:
    """Stand-in for the official `utils.HParams` (an attribute bag) while unpickling."""


def _plain(value: Any) -> Any:
    if isinstance(value, _HParams):
        return {k: _plain(v) for k, v in vars(value).items()}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def read_sovits_file(path: str | os.PathLike) -> dict:
    """The file's dict with `config` as plain dicts; the version tag (if any) is restored to `PK` first."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SoVITSCheckpointError(f"Cannot read the SoVITS file {path}: {err.strerror or err}.") from err
    if data[:2] != ZIP_MAGIC:
        data = ZIP_MAGIC + data[2:]
    try:
        with torch.serialization.safe_globals([(_HParams, "utils.HParams")]):
            raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or foreign files
        raise SoVITSCheckpointError(
            f"{path.name} is not a readable GPT-SoVITS SoVITS file ({type(err).__name__}: {str(err)[:200]}). "
            "Download it again (voxmith models download gpt-sovits).") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("weight"), dict):
        raise SoVITSCheckpointError(f"{path.name} has no 'weight' dictionary: not a GPT-SoVITS SoVITS (s2G) file.")
    return {**raw, "config": _plain(raw.get("config") or {})}


def write_sovits_file(path: str | os.PathLike, contents: dict, version: str) -> None:
    """Save like the official trainer: torch pickle, with the version tag for v2Pro/v2ProPlus/v3/v4."""
    buffer = io.BytesIO()
    torch.save(contents, buffer)
    data = buffer.getvalue()
    tag = VERSION_MAGIC.get(version)
    Path(path).write_bytes(tag + data[2:] if tag else data)


def fold_weight_norm(state_dict: dict) -> dict:
    """Replace each `X.weight_g`/`X.weight_v` pair by `X.weight = g * v / ||v||` (norm over all dims but 0)."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith(".weight_g"):
            if key[:-1] + "v" not in state_dict:
                raise SoVITSCheckpointError(f"damaged SoVITS weights: {key} without its weight_v")
            continue
        if key.endswith(".weight_v"):
            stem = key[: -len(".weight_v")]
            g = state_dict[stem + ".weight_g"].float()
            v = value.float()
            norm = torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True)
            out[stem + ".weight"] = (v * (g / norm)).to(value.dtype)
        else:
            out[key] = value
    return out


def _is_weight_normed(key: str) -> bool:
    return key.endswith(".weight") and (key.startswith(WEIGHT_NORM_PREFIXES) or ".enc.in_layers." in key
                                        or ".enc.res_skip_layers." in key or ".enc.cond_layer." in key)


def to_weight_norm_form(state_dict: dict) -> dict:
    """Inverse of `fold_weight_norm` for the layers the official model weight-normalises (the
    checkpoint layout); used to check key sets and to write official-layout files."""
    out = {}
    for key, value in state_dict.items():
        if _is_weight_normed(key):
            stem = key[: -len(".weight")]
            out[stem + ".weight_g"] = torch.linalg.vector_norm(value, dim=tuple(range(1, value.dim())), keepdim=True)
            out[stem + ".weight_v"] = value
        else:
            out[key] = value
    return out


@dataclass
class LoadedSoVITS:
    model: SoVITS
    version: SoVITSVersion
    config: SoVITSConfig
    info: str                # the trainer's note, e.g. "8epoch_96iteration"
    ignored_keys: tuple = () # weights in the file the model does not use


def _unsupported(path: Path, version: SoVITSVersion) -> SoVITSCheckpointError:
    what = f"{version.model_version} LoRA" if version.is_lora else version.model_version
    return SoVITSCheckpointError(
        f"{path.name} is a GPT-SoVITS {what} SoVITS file; voxmith runs v2, v2Pro and v2ProPlus only so far. "
        "Use s2G2333k.pth (v2) or s2Gv2ProPlus.pth (v2ProPlus): voxmith models download gpt-sovits --version v2ProPlus")


def load_sovits(path: str | os.PathLike, device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, with_posterior: bool = False) -> LoadedSoVITS:
    """Read, check and load a SoVITS file into an eval-mode `SoVITS` on `device`."""
    path = Path(path)
    try:
        version = detect_sovits_version(path)
    except OSError as err:
        raise SoVITSCheckpointError(f"Cannot read the SoVITS file {path}: {err.strerror or err}.") from err
    except ValueError as err:
        raise SoVITSCheckpointError(str(err)) from err
    if version.model_version in ("v3", "v4") or version.is_lora:
        raise _unsupported(path, version)
    contents = read_sovits_file(path)
    weights = contents["weight"]
    # As the official loader: outside v2Pro/v3/v4 the phone table decides between v1 and v2 (the size
    # rule and the hash table can say v1 for a v2 file and v2 for the v1 pretrained file).
    embedding = weights.get("enc_p.text_embedding.weight")
    if embedding is None:        # the v3/v4 models have no phone embedding in the SoVITS part
        raise _unsupported(path, SoVITSVersion("v3", "v2"))
    if embedding.shape[0] == V1_SYMBOLS:
        raise _unsupported(path, SoVITSVersion("v1", "v1"))
    if not version.is_pro:
        version = SoVITSVersion("v2", "v2")
    try:
        config = SoVITSConfig.from_checkpoint(contents["config"], version.model_version)
    except (TypeError, ValueError) as err:
        raise SoVITSCheckpointError(f"{path.name} has a SoVITS configuration voxmith cannot build: {err}.") from err
    if with_posterior:
        config = SoVITSConfig(**{**config.__dict__, "with_posterior": True})
    with torch.device("meta"):   # no random init of 40-85 M weights that are overwritten at once
        model = SoVITS(config)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in fold_weight_norm(weights).items()}
    if not with_posterior:
        state = {k: v for k, v in state.items() if not k.startswith("enc_q.")}
    # Keys the model lacks are ignored, as the official loader (strict=False) does; missing ones are not.
    try:
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as err:   # a weight of another shape than its config says
        raise SoVITSCheckpointError(f"{path.name} does not match its own configuration "
                                    f"({str(err).splitlines()[-1].strip()[:300]}).") from err
    if missing:
        raise SoVITSCheckpointError(
            f"{path.name} does not match the GPT-SoVITS {version.model_version} layout: {len(missing)} "
            f"missing weight(s) (e.g. {missing[:3]}). Is it a SoVITS (s2G) file of another version?")
    model = model.to(device=device, dtype=dtype).eval()
    return LoadedSoVITS(model=model, version=version, config=config, info=str(contents.get("info", "")),
                        ignored_keys=tuple(unexpected))


def sovits_file_version(path: str | os.PathLike) -> Optional[SoVITSVersion]:
    """The version of a SoVITS file, or None when the file is not one (for listings; never raises)."""
    try:
        return detect_sovits_version(path)
    except (OSError, ValueError):
        return None
