"""The three SV2TTS models together, built at the official sizes and loaded from the official
checkpoint files by their original key names (strictly: a file that is not the official model is
refused with a message naming it), or tiny with random weights for tests."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from voxmith.errors import VoxmithError

from .hparams import EncoderConfig, SignalConfig, TacotronConfig, WaveRNNConfig
from .speaker_encoder import SpeakerEncoder
from .tacotron import Tacotron
from .wavernn import WaveRNN


def read_model_state(path: Path, what: str) -> Dict[str, torch.Tensor]:
    """The "model_state" dict of an official checkpoint (tensors only: loaded with weights_only)."""
    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or foreign files
        raise VoxmithError(f"Cannot read the {what} checkpoint {path}: {err}. Delete it and run "
                           "`voxmith models download sv2tts` again.") from None
    state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise VoxmithError(f"{path} is not a Real-Time-Voice-Cloning {what} checkpoint (no 'model_state').")
    return state


def load_strict(module: torch.nn.Module, state: Dict[str, torch.Tensor], path: Path, what: str) -> None:
    state = dict(state)
    for key in set(module.state_dict()) - set(state):
        if key.endswith("num_batches_tracked"):  # files saved by older PyTorch lack this counter
            state[key] = torch.tensor(0, dtype=torch.long)
    missing, unexpected = set(module.state_dict()) - set(state), set(state) - set(module.state_dict())
    if missing or unexpected:
        raise VoxmithError(f"{path} does not hold the official {what}: {len(missing)} key(s) missing "
                           f"(e.g. {sorted(missing)[:3]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]}).")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise VoxmithError(f"{path} does not fit the official {what}'s shapes: {str(err)[:300]}") from None


# file name -> (what it is, its module, its config class)
_MODELS = {"encoder.pt": ("speaker encoder", SpeakerEncoder, EncoderConfig),
           "synthesizer.pt": ("synthesizer", Tacotron, TacotronConfig),
           "vocoder.pt": ("vocoder", WaveRNN, WaveRNNConfig)}


@dataclass
class SV2TTSModels:
    encoder: SpeakerEncoder
    synthesizer: Tacotron
    vocoder: WaveRNN
    signal: SignalConfig = SignalConfig()

    @property
    def device(self) -> torch.device:
        return next(self.synthesizer.parameters()).device

    @classmethod
    def from_checkpoints(cls, paths: Dict[str, Path], device: str = "cpu",
                         configs: Optional[Dict[str, object]] = None) -> "SV2TTSModels":
        """Built on the meta device (no memory spent on initial weights), then given the files' tensors.
        `configs`: file name -> config replacing the official sizes (tests load tiny files)."""
        configs = configs or {}
        built = {}
        for name, what, make in (("encoder.pt", "speaker encoder", SpeakerEncoder),
                                 ("synthesizer.pt", "synthesizer", Tacotron), ("vocoder.pt", "vocoder", WaveRNN)):
            default = {"encoder.pt": EncoderConfig, "synthesizer.pt": TacotronConfig, "vocoder.pt": WaveRNNConfig}[name]
            with torch.device("meta"):
                module = make(configs.get(name) or default())
            module = module.to_empty(device="cpu")
            load_strict(module, read_model_state(paths[name], what), paths[name], what)
            built[name] = module.to(device).eval()
        synthesizer = built["synthesizer.pt"]
        signal = dataclasses.replace(SignalConfig(), mel_bands=synthesizer.config.n_mels)
        return cls(built["encoder.pt"], synthesizer, built["vocoder.pt"], signal=signal)

    @classmethod
    def for_training(cls, paths: Dict[str, Optional[Path]], device: str = "cpu",
                     configs: Optional[Dict[str, object]] = None) -> Tuple["SV2TTSModels", List[str]]:
        """Models to train, each from its official file or, where `paths` has None, from random
        weights at the official sizes (those files' names are returned, to be said to the user)."""
        configs = configs or {}
        built, random_names = {}, []
        for name, (what, make, default) in _MODELS.items():
            path = paths.get(name)
            if path is None:
                with torch.random.fork_rng(devices=[]):  # the same random start everywhere, global RNG untouched
                    torch.manual_seed(0)
                    built[name] = make(configs.get(name) or default()).to(device)
                random_names.append(name)
                continue
            with torch.device("meta"):
                module = make(configs.get(name) or default())
            module = module.to_empty(device="cpu")
            load_strict(module, read_model_state(path, what), path, what)
            built[name] = module.to(device)
        synthesizer = built["synthesizer.pt"]
        signal = dataclasses.replace(SignalConfig(), mel_bands=synthesizer.config.n_mels)
        return cls(built["encoder.pt"], synthesizer, built["vocoder.pt"], signal=signal), random_names

    @classmethod
    def tiny(cls, seed: int = 0, device: str = "cpu") -> "SV2TTSModels":
        """Tiny models with random weights drawn from `seed` (tests: their audio is noise)."""
        generator = torch.Generator().manual_seed(seed)
        encoder_config = EncoderConfig.tiny()
        synth_config = dataclasses.replace(TacotronConfig.tiny(), speaker_embedding_size=encoder_config.embedding_size)
        vocoder_config = WaveRNNConfig.tiny()
        models = (SpeakerEncoder(encoder_config), Tacotron(synth_config), WaveRNN(vocoder_config))
        for module in models:
            with torch.no_grad():
                for key, tensor in sorted(module.state_dict().items()):
                    if torch.is_floating_point(tensor) and "running" not in key and key != "stop_threshold":
                        tensor.copy_(0.3 * torch.randn(tensor.shape, generator=generator))
        signal = dataclasses.replace(SignalConfig(), mel_bands=synth_config.n_mels)
        return cls(*(m.to(device).eval() for m in models), signal=signal)
