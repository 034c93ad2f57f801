"""TorToiSe generation options: the official presets, resolved option sets and a run-time estimate.

`TtsOptions` holds every knob of the official `TextToSpeech.tts` (SPEC §5) plus voxmith's own
(sampler choice, the kv-cache position quirk, half precision). Its defaults are those of a bare
official `tts()` call. `preset_options(name, **overrides)` reproduces `tts_with_preset`: the
tuned base values, then the preset's values, then the caller's overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

# tts_with_preset's tuned base values, applied under every preset.
PRESET_BASE: Dict[str, Any] = {"temperature": 0.8, "length_penalty": 1.0, "repetition_penalty": 2.0,
                               "top_p": 0.8, "cond_free_k": 2.0, "diffusion_temperature": 1.0}
PRESETS: Dict[str, Dict[str, Any]] = {
    "ultra_fast": {"num_autoregressive_samples": 16, "diffusion_iterations": 30, "cond_free": False},
    "fast": {"num_autoregressive_samples": 96, "diffusion_iterations": 80},
    "standard": {"num_autoregressive_samples": 256, "diffusion_iterations": 200},
    "high_quality": {"num_autoregressive_samples": 256, "diffusion_iterations": 400},
}
DEFAULT_PRESET = "fast"
SAMPLERS = ("p", "ddim")
# Weights of the AR model while it samples codes (see precision.py); "auto" is resolved per device.
AR_PRECISIONS = ("float32", "bfloat16", "int8")


@dataclass
class TtsOptions:
    """One `tts()` run's knobs. Defaults = a bare official `tts()` call (not a preset)."""

    num_autoregressive_samples: int = 512
    # None: pick from free GPU memory like the official code (16/8/4, else 1; 1 on the CPU).
    autoregressive_batch_size: Optional[int] = None
    temperature: float = 0.8
    top_p: float = 0.8
    repetition_penalty: float = 2.0
    length_penalty: float = 1.0  # accepted for parity; HF's sampler ignores it (beam search only)
    max_mel_tokens: int = 500
    cvvp_amount: float = 0.0
    diffusion_iterations: int = 100
    sampler: str = "p"  # "p": the official ancestral sampler; "ddim": deterministic DDIM steps
    cond_free: bool = True
    cond_free_k: float = 2.0
    diffusion_temperature: float = 1.0
    k: int = 1  # candidates returned, best CLVP(/CVVP) score first
    # True: feed generated codes at the official kv-cache path's (off-by-one) positions, i.e. what
    # do_tts.py/read.py produce; False: the positions of the official no-cache path.
    official_positions: bool = False
    half: bool = False  # fp16 autocast for the AR model and CLVP/CVVP, as official; CUDA only
    # Weights of the AR model while sampling codes (precision.py): float32 (as official), bfloat16 or
    # int8 (CPU only). The latent pass and the rankers stay fp32 either way.
    ar_precision: str = "float32"

    def replace(self, **changes: Any) -> "TtsOptions":
        return dataclasses.replace(self, **changes)


def preset_options(preset: str = DEFAULT_PRESET, **overrides: Any) -> TtsOptions:
    """Options as `tts_with_preset(preset, **overrides)` would use them."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = {**PRESET_BASE, **PRESETS[preset], **overrides}
    return TtsOptions(**values)


def auto_batch_size(device: str) -> int:
    """The official default autoregressive batch size for `device` (from free CUDA memory)."""
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            free_gb = torch.cuda.mem_get_info(torch.device(device))[0] / 1024 ** 3
            for threshold, size in ((14, 16), (10, 8), (7, 4)):
                if free_gb > threshold:
                    return size
    return 1


# Rough per-operation costs at official size, in seconds: (CPU on a few cores, a recent GPU).
# Measured on 2 CPU cores with random weights (SPEC §6) and rounded; GPU figures are typical.
_COSTS = {
    "ar_step": (0.1, 0.025),        # one sampling step of one batch (grows mildly with batch on CPU)
    "clvp_sample": (2.0, 0.01),     # CLVP scoring of one 500-code sample
    "cvvp_sample": (2.5, 0.01),     # CVVP scoring of one sample against one clip
    "diffusion_forward": (6.0, 0.03),  # one diffusion model call for ~8 s of audio
    "fixed": (15.0, 2.0),           # latents, vocoder, setup
}
TYPICAL_CODES = 200  # AR rows usually stop well before max_mel_tokens (~9 s of speech)
# CPU per-step sampling speed-up over fp32 by ar_precision (benchmarks/results/tortoise_speed.json and
# the issue-18 EPYC re-run: int8 2.9-4x, bf16 1.7-2.3x depending on the CPU and batch).
_AR_PRECISION_SPEEDUP_CPU = {"float32": 1.0, "bfloat16": 2.0, "int8": 3.0}


def estimate_seconds(options: TtsOptions, device: str = "cpu", clips: int = 1) -> float:
    """A rough wall-time estimate of one `tts()` run with `options` on `device` (models loaded)."""
    gpu = 1 if str(device).startswith(("cuda", "mps")) else 0
    batch = options.autoregressive_batch_size or auto_batch_size(device)
    batches = max(1, options.num_autoregressive_samples // batch)
    steps = min(options.max_mel_tokens, TYPICAL_CODES)
    per_step = _COSTS["ar_step"][gpu] * (1 + 0.5 * (batch - 1) if not gpu else 1)
    if not gpu:
        per_step /= _AR_PRECISION_SPEEDUP_CPU.get(options.ar_precision, 1.0)
    seconds = batches * steps * per_step
    samples = batches * batch
    seconds += samples * _COSTS["clvp_sample"][gpu]
    if options.cvvp_amount > 0:
        seconds += samples * clips * _COSTS["cvvp_sample"][gpu]
    forwards = options.diffusion_iterations * (2 if options.cond_free else 1)
    seconds += options.k * forwards * _COSTS["diffusion_forward"][gpu]
    return seconds + _COSTS["fixed"][gpu]


__all__ = ["TtsOptions", "PRESETS", "PRESET_BASE", "DEFAULT_PRESET", "SAMPLERS", "AR_PRECISIONS", "preset_options",
           "auto_batch_size", "estimate_seconds"]
