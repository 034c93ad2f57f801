"""Loading an official GPT-SoVITS GPT checkpoint (`s1*.ckpt`, or a fine-tuned `*-e15.ckpt`) into our model.

An s1 file is a torch pickle holding a dict with
* `config`: the training config (the `model` section sizes the network, `data.max_sec` sets the
  official early stop: 50 * max_sec codes);
* `weight`: the Lightning module's state_dict, every key prefixed `model.` (fine-tuned files store it
  in float16);
* `info` (fine-tuned files): e.g. "GPT-e15".
A full Lightning training checkpoint (`state_dict` + `hyper_parameters.config`) is accepted too.

The file is read with `torch.load(weights_only=True)`: official s1 files hold only tensors and plain
containers, and nothing in a downloaded file gets to run code. A file that is not an s1 checkpoint
(a SoVITS `s2G*.pth`, a damaged download, any other model) is refused with a message saying what it
is and what to pass instead.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import torch

from voxmith.engines.gpt_sovits.t2s import T2SConfig, Text2SemanticModel
from voxmith.engines.gpt_sovits.t2s_generate import DEFAULT_MAX_SEC, HZ_FOR_EARLY_STOP
from voxmith.errors import VoxmithError

KEY_PREFIX = "model."  # the Lightning module holds the decoder as `self.model`
# SoVITS v3/v4/v2Pro/v2ProPlus files are zip archives whose "PK" magic the official saver overwrites.
SOVITS_VERSION_HEADERS = (b"03", b"04", b"05", b"06")
HINT = "Pass the GPT weights (an s1 .ckpt file, e.g. s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt)."


class T2SCheckpointError(VoxmithError):
    """A file that cannot be used as a GPT-SoVITS GPT (s1) checkpoint."""


@dataclass
class LoadedT2S:
    """A ready model (eval mode) and what the checkpoint says about how to run it."""

    model: Text2SemanticModel
    config: T2SConfig
    max_sec: int  # data.max_sec of the checkpoint's config
    info: Optional[str]  # "GPT-e15" in fine-tuned files, else None
    raw_config: Dict[str, Any]  # the checkpoint's whole config, as stored

    @property
    def early_stop_num(self) -> int:
        """Codes after which generation stops, as the official TTS computes it (50 * max_sec)."""
        return HZ_FOR_EARLY_STOP * self.max_sec


def _read(path: Path) -> Any:
    if not path.is_file():
        raise T2SCheckpointError(f"GPT checkpoint {path} does not exist. {HINT}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError) as err:
        with path.open("rb") as fh:
            magic = fh.read(2)
        if magic in SOVITS_VERSION_HEADERS:
            raise T2SCheckpointError(f"{path} looks like a SoVITS v3/v4/v2Pro file (its header is patched the "
                                     f"official way), not a GPT checkpoint. {HINT}") from None
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise T2SCheckpointError(f"{path} cannot be read as a torch checkpoint ({first}); the file may be "
                                 f"damaged or incomplete: download it again. {HINT}") from None


def split_checkpoint(data: Any, source: str = "checkpoint") -> tuple[Mapping[str, torch.Tensor], Dict[str, Any]]:
    """(state_dict with official key names, `model.` prefix removed; config) of a loaded s1 dict."""
    if not isinstance(data, Mapping):
        raise T2SCheckpointError(f"{source} is not a GPT-SoVITS checkpoint (it holds a {type(data).__name__}, "
                                 f"not a dict). {HINT}")
    if "weight" in data and "config" in data:
        weights, config = data["weight"], data["config"]
    elif "state_dict" in data and isinstance(data.get("hyper_parameters"), Mapping) \
            and "config" in data["hyper_parameters"]:
        weights, config = data["state_dict"], data["hyper_parameters"]["config"]
    else:
        raise T2SCheckpointError(f"{source} has neither `weight` + `config` (an exported s1 file) nor a Lightning "
                                 f"`state_dict` (found: {', '.join(sorted(map(str, data))) or 'nothing'}). {HINT}")
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise T2SCheckpointError(f"{source}'s config has no `model` section. {HINT}")
    if not isinstance(weights, Mapping) or not any(str(k).startswith(KEY_PREFIX + "ar_") for k in weights):
        if isinstance(weights, Mapping) and any(str(k).startswith(("enc_p.", "dec.", "quantizer.")) for k in weights):
            raise T2SCheckpointError(f"{source} is a SoVITS (s2G) model, not the GPT. {HINT}")
        raise T2SCheckpointError(f"{source}'s weights are not those of a GPT-SoVITS GPT (no `model.ar_*` keys). "
                                 f"{HINT}")
    state = {key[len(KEY_PREFIX):]: value for key, value in weights.items() if key.startswith(KEY_PREFIX)}
    return state, dict(config)


def build_model(config: Mapping[str, Any], source: str = "checkpoint") -> tuple[Text2SemanticModel, T2SConfig]:
    try:
        t2s_config = T2SConfig.from_official(config)
    except (KeyError, TypeError, ValueError) as err:
        raise T2SCheckpointError(f"{source}'s config cannot size the GPT ({err}). {HINT}") from None
    return Text2SemanticModel(t2s_config), t2s_config


def load_state(model: Text2SemanticModel, state: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load official-named weights (any float dtype; converted to the model's) or say what does not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''} ({len(keys)})")
        raise T2SCheckpointError(f"{source}'s weights do not fit the GPT its config describes ({'; '.join(parts)}). "
                                 f"The file may come from another version of GPT-SoVITS. {HINT}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


def load_t2s_checkpoint(path: Union[str, Path], device: Union[str, torch.device] = "cpu",
                        dtype: torch.dtype = torch.float32) -> LoadedT2S:
    """Read an official s1 checkpoint and return the model in eval mode on `device` in `dtype`."""
    path = Path(path)
    data = _read(path)
    state, config = split_checkpoint(data, str(path))
    info = data.get("info") if isinstance(data.get("info"), str) else None
    del data
    model, t2s_config = build_model(config, str(path))
    load_state(model, state, str(path))
    data_section = config.get("data") if isinstance(config.get("data"), Mapping) else {}
    max_sec = int(data_section.get("max_sec", DEFAULT_MAX_SEC))
    model = model.to(device=device, dtype=dtype).eval()
    return LoadedT2S(model=model, config=t2s_config, max_sec=max_sec, info=info, raw_config=config)
