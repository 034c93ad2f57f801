"""Losses of SoVITS fine-tuning (stage 1 of the GPT-SoVITS recipe, official `s2_train.py`), as pure functions.

Generator step: `adversarial_generator_loss + feature_matching_loss + C_MEL * mel_l1 + kl_loss (* C_KL)
+ commitment` (the last is 0 in the official recipe: `freeze_quantizer` puts the quantiser in eval mode,
where it returns no commitment loss). Discriminator step: `discriminator_loss` on the detached output.
Discriminator outputs are lists (one per sub-discriminator: 1 scale + 5 periods for v2, 7 for v2Pro);
feature maps are lists of lists. Everything is computed in float32, as the official code does under
mixed precision.

The mel used by the mel loss (`mel_from_linear`, `mel_of_waveform`): 128 Slaney mel bands (librosa's
filters, 0 Hz to Nyquist) of the linear spectrogram (`spectrogram.linear_spectrogram`), natural log of
max(x, 1e-5).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch
import torch.nn.functional as F

from .spectrogram import HOP_LENGTH, N_FFT, SAMPLE_RATE_HZ, WIN_LENGTH, linear_spectrogram

C_MEL = 45.0          # weight of the mel L1 loss (configs/s2.json train.c_mel)
C_KL = 1.0            # weight of the KL loss (train.c_kl)
N_MELS = 128
LOG_FLOOR = 1e-5


@lru_cache(maxsize=4)
def _mel_basis(n_fft: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=None))


def mel_from_linear(spec: torch.Tensor, n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE_HZ) -> torch.Tensor:
    """`(batch, n_fft // 2 + 1, frames)` magnitude -> `(batch, n_mels, frames)` log mel."""
    n_fft = (spec.shape[1] - 1) * 2
    basis = _mel_basis(n_fft, n_mels, sample_rate).to(device=spec.device, dtype=spec.dtype)
    return torch.log(torch.clamp(basis @ spec, min=LOG_FLOOR))


def mel_of_waveform(wave: torch.Tensor, n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE_HZ) -> torch.Tensor:
    """`(batch, samples)` -> log mel `(batch, n_mels, samples // hop)` (same framing as the spectrogram)."""
    return mel_from_linear(linear_spectrogram(wave, N_FFT, HOP_LENGTH, WIN_LENGTH), n_mels, sample_rate)


def mel_l1(target_mel: torch.Tensor, generated_mel: torch.Tensor) -> torch.Tensor:
    """Unweighted mean absolute difference of log mels (multiply by C_MEL)."""
    return F.l1_loss(target_mel.float(), generated_mel.float())


def kl_loss(z_p: torch.Tensor, logs_q: torch.Tensor, m_p: torch.Tensor, logs_p: torch.Tensor,
            mask: torch.Tensor) -> torch.Tensor:
    """KL between the posterior sample mapped through the flow (`z_p`, with the posterior's log-std
    `logs_q`) and the prior N(m_p, exp(logs_p)), summed over channels and valid frames, divided by the
    number of valid frames x batch (the mask's sum)."""
    z_p, logs_q, m_p, logs_p, mask = (t.float() for t in (z_p, logs_q, m_p, logs_p, mask))
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask)


def discriminator_loss(real_outputs: Sequence[torch.Tensor], fake_outputs: Sequence[torch.Tensor]):
    """Least-squares GAN loss of the discriminators: real toward 1, generated toward 0.
    Returns (total, per-discriminator real losses, per-discriminator generated losses)."""
    real_losses = [torch.mean((1 - r.float()) ** 2) for r in real_outputs]
    fake_losses = [torch.mean(g.float() ** 2) for g in fake_outputs]
    return sum(real_losses) + sum(fake_losses), real_losses, fake_losses


def adversarial_generator_loss(fake_outputs: Sequence[torch.Tensor]):
    """Least-squares GAN loss of the generator: its outputs judged toward 1. Returns (total, per-discriminator)."""
    losses = [torch.mean((1 - g.float()) ** 2) for g in fake_outputs]
    return sum(losses), losses


def feature_matching_loss(real_maps: Sequence[Sequence[torch.Tensor]],
                          fake_maps: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """Twice the sum over every discriminator layer of the mean |real - generated| feature difference
    (real features detached)."""
    total = 0.0
    for real_layers, fake_layers in zip(real_maps, fake_maps):
        for real, fake in zip(real_layers, fake_layers):
            total = total + torch.mean(torch.abs(real.float().detach() - fake.float()))
    return total * 2


def commitment_loss(projected: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """VQ commitment: MSE of the projected features to their (detached) code vectors. The official
    recipe freezes the quantiser, which makes this term 0; it is here for an unfrozen quantiser."""
    return F.mse_loss(quantized.detach(), projected)
