"""Linear spectrogram and loudness rules of GPT-SoVITS' 32 kHz SoVITS models.

    spec = reference_spectrogram(samples_32k)      # (samples,) float -> (1, 1025, frames), for decode
    spec = linear_spectrogram(batch_32k)           # (batch, samples) -> (batch, 1025, frames)

The spectrogram is the official `module/mel_processing.py: spectrogram_torch` at the model's settings:
n_fft 2048, hop 640, Hann window 2048, reflect-padded by (n_fft - hop) / 2 on both sides and
`center=False`, magnitude sqrt(re^2 + im^2 + 1e-8); one frame per 640 samples (50 Hz at 32 kHz).

Loudness rules:
- reference (inference, `TTS._get_ref_spec`): a reference whose peak exceeds 1 is divided by
  min(2, peak); quieter audio is left alone.
- training audio (`prepare_datasets/2-get-hubert-wav32k.py`): half peak-normalised to 0.95, half as is
  (`training_audio`); clips peaking above 2.2 are skipped by the official recipe (`TRAINING_MAX_PEAK`).

Resampling to 32 kHz (and to 16 kHz for HuBERT) is the caller's job (voxmith.audio).
"""

from __future__ import annotations

import numpy as np
import torch

SAMPLE_RATE_HZ = 32000
N_FFT = 2048
HOP_LENGTH = 640
WIN_LENGTH = 2048
TRAINING_PEAK = 0.95
TRAINING_PEAK_MIX = 0.5   # share of the peak-normalised copy in a training clip
TRAINING_MAX_PEAK = 2.2   # the official recipe drops clips louder than this


def linear_spectrogram(samples: torch.Tensor, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
                       win_length: int = WIN_LENGTH) -> torch.Tensor:
    """Magnitude spectrogram `(batch, n_fft // 2 + 1, frames)` of `(batch, samples)` (or `(samples,)`)."""
    if samples.dim() == 1:
        samples = samples.unsqueeze(0)
    pad = (n_fft - hop_length) // 2
    if samples.shape[-1] <= pad:
        raise ValueError(f"audio of {samples.shape[-1]} samples is too short for a spectrogram")
    padded = torch.nn.functional.pad(samples.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(win_length, dtype=samples.dtype, device=samples.device)
    spec = torch.stft(padded, n_fft, hop_length=hop_length, win_length=win_length, window=window,
                      center=False, normalized=False, onesided=True, return_complex=True)
    return torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-8)


def reference_loudness(samples: torch.Tensor) -> torch.Tensor:
    """The official reference rule: audio peaking above 1 is divided by min(2, peak)."""
    peak = float(samples.abs().max()) if samples.numel() else 0.0
    return samples / min(2.0, peak) if peak > 1 else samples


def reference_spectrogram(samples_32k: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Spectrogram `(1, 1025, frames)` of a mono 32 kHz reference, for `SoVITS.decode`."""
    samples = torch.as_tensor(np.asarray(samples_32k, dtype=np.float32)) if isinstance(samples_32k, np.ndarray) \
        else samples_32k.float()
    if samples.dim() != 1:
        raise ValueError(f"reference audio must be mono (samples,), got shape {tuple(samples.shape)}")
    return linear_spectrogram(reference_loudness(samples).unsqueeze(0))


def training_audio(samples: np.ndarray) -> np.ndarray:
    """A 32 kHz training clip as the official recipe stores it (float, full scale 1.0): the mean of a
    copy peak-normalised to 0.95 and the clip itself. A silent clip is returned unchanged."""
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak == 0:
        return samples.astype(np.float32)
    mixed = samples / peak * (TRAINING_PEAK * TRAINING_PEAK_MIX) + (1 - TRAINING_PEAK_MIX) * samples
    return mixed.astype(np.float32)
