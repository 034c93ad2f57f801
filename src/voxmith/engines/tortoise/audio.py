"""TorToiSe's audio front ends: the two conditioning mel spectrograms and the 22.05 → 24 kHz resampler.

The released models were trained on features from specific libraries, so each front end here
reproduces one of them in plain torch (SPEC §3), without torchaudio (no CPU build exists for the
torch voxmith uses) and without librosa:

* `ar_conditioning_mel`: what conditions the autoregressive model and CVVP. torchaudio's
  ``MelSpectrogram`` (power 2, periodic Hann, centred reflect-padded STFT, HTK mel scale with Slaney
  area normalisation, 80 bands up to 8 kHz at 22.05 kHz), then ``log(clamp(., 1e-5))`` divided per
  band by the shipped ``mel_norms``.
* `univnet_mel`: what conditions the diffusion decoder (and the vocoder's native format). A
  conv1d-with-DFT-basis STFT magnitude (power 1) at 24 kHz, librosa's Slaney-scale Slaney-normalised
  mel filterbank (100 bands up to 12 kHz), then ``log(clamp(., 1e-5))``.
* `resample`: torchaudio's default band-limited sinc resampler (Hann-windowed, 6 zero crossings,
  rolloff 0.99).

`clip_22k` turns any clip into the official loader's 22.05 kHz waveform. The clip preparation of
the official ``get_conditioning_latents`` (6 s AR crop, 102400-sample
diffusion crop) is in `official_ar_clip` / `official_diffusion_clip`. `whole_clip_chunks` is
voxmith's alternative that uses all of the reference audio instead of one crop per clip.
"""

from __future__ import annotations

import json
import math
import random
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from voxmith.audio import Audio, to_mono
from voxmith.errors import VoxmithError

DATA_DIR = Path(__file__).resolve().parent / "data"

INPUT_SAMPLE_RATE = 22050  # voice clips and the AR/CVVP mel
OUTPUT_SAMPLE_RATE = 24000  # diffusion mel and the vocoder output
AR_COND_SAMPLES = 132300  # 6 s at 22.05 kHz
DIFFUSION_COND_SAMPLES = 102400  # at 24 kHz
N_FFT = 1024
HOP = 256
LOG_FLOOR = 1e-5

# The diffusion model emits mels in [-1, 1]; these are the log-mel bounds it was scaled from.
TACOTRON_MEL_MAX = 2.3143386840820312
TACOTRON_MEL_MIN = -11.512925148010254


# --------------------------------------------------------------------------------------------
# Resampling


@lru_cache(maxsize=8)
def _sinc_kernel(orig: int, new: int, width_zeros: int, rolloff: float, dtype: torch.dtype):
    """Polyphase kernel bank (new, 1, taps) and half-width, for rates already divided by their gcd.

    Follows torchaudio's construction step by step, in the waveform's dtype, so the taps come out
    bit-identical: output phase j of each block of `new` samples uses the sinc centred at
    j/new (in input-sample units), low-passed at rolloff·min(orig,new) and Hann-windowed.
    """
    cutoff = min(orig, new) * rolloff
    half = math.ceil(width_zeros * orig / cutoff)
    taps = torch.arange(-half, half + orig, dtype=dtype)[None, None] / orig
    phases = torch.arange(0, -new, -1, dtype=dtype)[:, None, None] / new
    t = (phases + taps) * cutoff
    t = t.clamp_(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones((), dtype=dtype), t.sin() / t)
    return sinc * (window * (cutoff / orig)), half


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int, lowpass_filter_width: int = 6,
             rolloff: float = 0.99) -> torch.Tensor:
    """Band-limited resampling of (..., T) audio, matching ``torchaudio.functional.resample``."""
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError("sample rates must be positive")
    if orig_sr == new_sr:
        return wav
    if not wav.is_floating_point():
        raise TypeError(f"expected floating point audio, got {wav.dtype}")
    g = math.gcd(int(orig_sr), int(new_sr))
    orig, new = int(orig_sr) // g, int(new_sr) // g
    kernel, half = _sinc_kernel(orig, new, lowpass_filter_width, float(rolloff), wav.dtype)
    kernel = kernel.to(wav.device)
    lead = wav.shape[:-1]
    flat = wav.reshape(-1, wav.shape[-1])
    length = flat.shape[-1]
    # Each stride-`orig` step of the conv yields one block of `new` output samples (one per phase).
    padded = F.pad(flat, (half, half + orig))
    blocks = F.conv1d(padded[:, None], kernel, stride=orig)
    out = blocks.transpose(1, 2).reshape(flat.shape[0], -1)
    out_len = math.ceil(new * length / orig)
    return out[:, :out_len].reshape(*lead, -1)


def clip_22k(clip: Audio) -> torch.Tensor:
    """A clip as official `load_audio(path, 22050)` gives it: mono, 22.05 kHz (torchaudio-style
    resampling), clipped to [-1, 1], shape (1, T). Voice clips and training lines both go through
    it, so training sees what synthesis sees."""
    wave = torch.from_numpy(np.ascontiguousarray(to_mono(clip.samples), dtype=np.float32))
    wave = resample(wave, int(clip.sample_rate_hz), INPUT_SAMPLE_RATE)
    if wave.numel() == 0:
        raise VoxmithError(f"Clip {clip.label} is empty.")
    return wave.clamp(-1, 1).reshape(1, -1)


# --------------------------------------------------------------------------------------------
# Mel filterbanks


def _htk_hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


@lru_cache(maxsize=4)
def htk_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float,
                       f_max: float) -> torch.Tensor:
    """(n_fft//2+1, n_mels) triangular HTK-scale filters with Slaney area normalisation.

    Same float32 arithmetic as torchaudio's ``melscale_fbanks(norm="slaney", mel_scale="htk")``.
    """
    bins = torch.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    mel_edges = torch.linspace(_htk_hz_to_mel(f_min), _htk_hz_to_mel(f_max), n_mels + 2)
    hz_edges = 700.0 * (10.0 ** (mel_edges / 2595.0) - 1.0)
    widths = hz_edges[1:] - hz_edges[:-1]
    offsets = hz_edges.unsqueeze(0) - bins.unsqueeze(1)  # (bins, n_mels + 2)
    rising = (-1.0 * offsets[:, :-2]) / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    bank = torch.max(torch.zeros(1), torch.min(rising, falling))
    # Area normalisation: each triangle scaled by 2 / (its width in Hz).
    return bank * (2.0 / (hz_edges[2:n_mels + 2] - hz_edges[:n_mels])).unsqueeze(0)


def _slaney_hz_to_mel(hz):
    """Slaney's Auditory Toolbox scale: linear below 1 kHz, logarithmic above (numpy, float64)."""
    import numpy as np

    hz = np.asanyarray(hz, dtype=np.float64)
    step = 200.0 / 3
    log_step = math.log(6.4) / 27.0
    mel = hz / step
    high = hz >= 1000.0
    return np.where(high, 1000.0 / step + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step, mel)


def _slaney_mel_to_hz(mel):
    import numpy as np

    mel = np.asanyarray(mel, dtype=np.float64)
    step = 200.0 / 3
    log_step = math.log(6.4) / 27.0
    knee = 1000.0 / step
    return np.where(mel >= knee, 1000.0 * np.exp(log_step * (mel - knee)), step * mel)


@lru_cache(maxsize=4)
def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float,
                          f_max: float) -> torch.Tensor:
    """(n_mels, n_fft//2+1) filters equal to ``librosa.filters.mel(..., htk=False, norm="slaney")``.

    Built in float64 and rounded to float32 at the same points as librosa, so the values agree.
    """
    import numpy as np

    bins = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    mel_points = np.linspace(_slaney_hz_to_mel(f_min), _slaney_hz_to_mel(f_max), n_mels + 2)
    hz_edges = _slaney_mel_to_hz(mel_points)
    widths = np.diff(hz_edges)
    offsets = np.subtract.outer(hz_edges, bins)  # (n_mels + 2, bins)
    bank = np.zeros((n_mels, bins.shape[0]), dtype=np.float32)
    for band in range(n_mels):
        rising = -offsets[band] / widths[band]
        falling = offsets[band + 2] / widths[band + 1]
        bank[band] = np.maximum(0, np.minimum(rising, falling))
    bank *= (2.0 / (hz_edges[2:n_mels + 2] - hz_edges[:n_mels]))[:, None]
    return torch.from_numpy(bank)


# --------------------------------------------------------------------------------------------
# The AR / CVVP conditioning mel (torchaudio-style power mel at 22.05 kHz)


@lru_cache(maxsize=1)
def _mel_norms() -> torch.Tensor:
    values = json.loads((DATA_DIR / "mel_norms.json").read_text())
    return torch.tensor(values, dtype=torch.float32)


def mel_norms() -> torch.Tensor:
    """The 80 per-band divisors of the AR conditioning log-mel (all negative); a fresh copy."""
    return _mel_norms().clone()


def power_mel(wav: torch.Tensor, sample_rate: int = INPUT_SAMPLE_RATE, n_mels: int = 80,
              f_max: float = 8000.0) -> torch.Tensor:
    """(B, T) → (B, n_mels, 1 + T//256) power mel, as ``torchaudio.transforms.MelSpectrogram``
    with n_fft=win=1024, hop=256, f_min=0, norm="slaney", default HTK scale."""
    window = torch.hann_window(N_FFT, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(wav, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window=window, center=True,
                      pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
    power = spec.abs().pow(2.0)
    bank = htk_mel_filterbank(sample_rate, N_FFT, n_mels, 0.0, f_max).to(wav.device, wav.dtype)
    return torch.matmul(power.transpose(-1, -2), bank).transpose(-1, -2)


def ar_conditioning_mel(wav: torch.Tensor) -> torch.Tensor:
    """22.05 kHz audio (B, T), (B, 1, T) or (T,) → normalised log mel (B, 80, 1 + T//256)."""
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    elif wav.dim() == 3:
        wav = wav.squeeze(1)  # mono channel axis
    if wav.dim() != 2:
        raise ValueError(f"expected (B, T) audio, got shape {tuple(wav.shape)}")
    mel = torch.log(torch.clamp(power_mel(wav), min=LOG_FLOOR))
    return mel / _mel_norms().to(mel.device).unsqueeze(0).unsqueeze(-1)


# --------------------------------------------------------------------------------------------
# The diffusion conditioning mel (conv-STFT magnitude, Slaney mel, 24 kHz)


@lru_cache(maxsize=2)
def _dft_basis(n_fft: int) -> torch.Tensor:
    """(2·(n_fft//2+1), 1, n_fft) conv weights: cos rows then -sin rows, times a periodic Hann."""
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.int64)[:, None]
    n = torch.arange(n_fft, dtype=torch.int64)[None, :]
    # Reduce k·n modulo n_fft before scaling so large products keep full float64 precision.
    angle = (2 * math.pi / n_fft) * ((k * n) % n_fft).to(torch.float64)
    basis = torch.cat([torch.cos(angle), -torch.sin(angle)]).to(torch.float32)
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64).to(torch.float32)
    return (basis * window)[:, None, :]


def stft_magnitude(wav: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """(B, T) → (B, n_fft//2+1, 1 + T//hop) magnitude via a strided conv, centred by reflect padding."""
    padded = F.pad(wav.unsqueeze(1), (n_fft // 2, n_fft // 2), mode="reflect")
    out = F.conv1d(padded, _dft_basis(n_fft).to(wav.device, wav.dtype), stride=hop)
    bins = n_fft // 2 + 1
    real, imag = out[:, :bins], out[:, bins:]
    return torch.sqrt(real ** 2 + imag ** 2)


def univnet_mel(wav: torch.Tensor, sample_rate: int = OUTPUT_SAMPLE_RATE, n_mels: int = 100,
                f_max: float = 12000.0) -> torch.Tensor:
    """24 kHz audio (B, T) or (T,) → natural-log magnitude mel (B, 100, 1 + T//256), not normalised."""
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    if wav.dim() != 2:
        raise ValueError(f"expected (B, T) audio, got shape {tuple(wav.shape)}")
    wav = torch.clip(wav, -1.0, 1.0)
    bank = slaney_mel_filterbank(sample_rate, N_FFT, n_mels, 0.0, f_max).to(wav.device, wav.dtype)
    mel = torch.matmul(bank, stft_magnitude(wav))
    return torch.log(torch.clamp(mel, min=LOG_FLOOR))


def normalize_tacotron_mel(mel: torch.Tensor) -> torch.Tensor:
    """Log mel → the diffusion model's [-1, 1] space."""
    return 2 * ((mel - TACOTRON_MEL_MIN) / (TACOTRON_MEL_MAX - TACOTRON_MEL_MIN)) - 1


def denormalize_tacotron_mel(mel: torch.Tensor) -> torch.Tensor:
    """The diffusion model's [-1, 1] output → natural-log mel for the vocoder."""
    return ((mel + 1) / 2) * (TACOTRON_MEL_MAX - TACOTRON_MEL_MIN) + TACOTRON_MEL_MIN


# --------------------------------------------------------------------------------------------
# Conditioning-clip preparation


def pad_or_truncate(wav: torch.Tensor, length: int) -> torch.Tensor:
    """Keep the first `length` samples, or zero-pad at the end up to it."""
    have = wav.shape[-1]
    if have == length:
        return wav
    if have < length:
        return F.pad(wav, (0, length - have))
    return wav[..., :length]


def official_ar_clip(clip: torch.Tensor, length: int = AR_COND_SAMPLES,
                     rng: random.Random | None = None) -> torch.Tensor:
    """The official 6 s AR crop of a (1, T) 22.05 kHz clip: zero-pad at the end if short, else a
    random window whose start is ``randint(0, T - length)`` from Python's `random` (the global one
    unless `rng` is given, so seeding with ``random.seed`` reproduces the official choice)."""
    gap = clip.shape[-1] - length
    if gap < 0:
        return F.pad(clip, (0, -gap))
    if gap > 0:
        start = (rng or random).randint(0, gap)
        return clip[..., start:start + length]
    return clip


def official_diffusion_clip(clip: torch.Tensor) -> torch.Tensor:
    """The official diffusion conditioning input: resample 22.05 → 24 kHz, first 102400 samples."""
    return pad_or_truncate(resample(clip, INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE), DIFFUSION_COND_SAMPLES)


def official_conditioning_mels(clips: Sequence[torch.Tensor], rng: random.Random | None = None
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mels of the official get_conditioning_latents, stacked as the models expect.

    `clips` are (1, T) 22.05 kHz tensors. Returns (ar_mels (1, n, 80, 517), diffusion_mels
    (1, n, 100, 401)); the models average over the clip axis n. The AR crops draw from `random` in
    clip order, as the official code does.
    """
    ar = [ar_conditioning_mel(official_ar_clip(c, rng=rng)) for c in clips]
    diff = [univnet_mel(official_diffusion_clip(c)) for c in clips]
    return torch.stack(ar, dim=1), torch.stack(diff, dim=1)


def whole_clip_chunks(clips: Sequence[torch.Tensor], max_chunk_samples: int = AR_COND_SAMPLES
                      ) -> list[torch.Tensor]:
    """Split all reference audio into equal chunks so conditioning sees every second of it.

    voxmith's "use the whole clip" mode, after ai-voice-cloning: the (1, T) 22.05 kHz clips are
    joined end to end and cut into the fewest equal slices (``torch.chunk``) no longer than
    `max_chunk_samples`; a shorter last slice is zero-padded to the first one's length. Conditioning
    each chunk and averaging over chunks (the models' get_conditioning averages over the clip axis)
    replaces the official single crop per clip.
    """
    if not clips:
        raise ValueError("no reference clips")
    if max_chunk_samples <= 0:
        raise ValueError("max_chunk_samples must be positive")
    joined = torch.cat([c.reshape(1, -1) for c in clips], dim=-1)
    total = joined.shape[-1]
    slices = 1
    while total // slices > max_chunk_samples:
        slices += 1
    chunks = list(torch.chunk(joined, slices, dim=-1))
    size = chunks[0].shape[-1]
    return [pad_or_truncate(chunk, size) for chunk in chunks]


def chunk_conditioning_mels(chunks: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ar_mels (1, n, 80, F), diffusion_mels (1, n, 100, F')) for equal-length 22.05 kHz chunks.

    Unlike the official path nothing is cropped; the diffusion input is each chunk resampled to
    24 kHz (ai-voice-cloning feeds the 22.05 kHz chunk straight in, which mislabels its rate).
    """
    ar = [ar_conditioning_mel(c) for c in chunks]
    diff = [univnet_mel(resample(c, INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE)) for c in chunks]
    return torch.stack(ar, dim=1), torch.stack(diff, dim=1)
