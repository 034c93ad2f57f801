"""WORLD vocoder analysis/synthesis and mel-cepstrum helpers for piper-vc.

Features are kept per frame (5 ms hop): F0 in Hz (0 = unvoiced), the mel-cepstrum of the
CheapTrick spectral envelope (all-pass constant `ALPHA` for 22.05 kHz, order `ORDER`), and
the D4C aperiodicity, which conversion leaves untouched. The frequency warp is the all-pass
`freqt` transform, which is linear in the cepstrum, so it is precomputed as a matrix.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pyworld imports pkg_resources
    import pyworld
import pysptk

SAMPLE_RATE_HZ = 22050
FRAME_PERIOD_MS = 5.0
ORDER = 34  # 35 coefficients: enough to keep formant detail at 22.05 kHz without pitch ripple
ALPHA = 0.455  # pysptk.util.mcepalpha(22050): all-pass constant that approximates the mel scale
FFT_SIZE = pyworld.get_cheaptrick_fft_size(SAMPLE_RATE_HZ)
F0_FLOOR_HZ = 60.0
F0_CEIL_HZ = 600.0


@dataclass
class WorldFeatures:
    f0: np.ndarray  # (T,) Hz, 0 where unvoiced
    mcep: np.ndarray  # (T, ORDER + 1)
    ap: Optional[np.ndarray]  # (T, FFT_SIZE // 2 + 1); None where it was not analysed (with_aperiodicity)

    @property
    def voiced(self) -> np.ndarray:
        return self.f0 > 0


def analyse(samples: np.ndarray, *, accurate_f0: bool = False, aperiodicity: bool = True) -> WorldFeatures:
    """WORLD analysis of float mono at SAMPLE_RATE_HZ. `accurate_f0` uses Harvest (about 20x
    slower, fewer voicing errors; worth it only for the target at enrollment), else
    DIO + StoneMask, which is enough for Piper's clean output. `aperiodicity` False leaves `ap`
    None: D4C is over half the analysis, and rendering from the base voice's waveform needs it only
    for a residual network (with_aperiodicity adds it later)."""
    x = np.ascontiguousarray(samples, dtype=np.float64)
    if accurate_f0:
        f0, t = pyworld.harvest(x, SAMPLE_RATE_HZ, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ,
                                frame_period=FRAME_PERIOD_MS)
    else:
        f0, t = pyworld.dio(x, SAMPLE_RATE_HZ, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ,
                            frame_period=FRAME_PERIOD_MS)
        f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE_HZ)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE_HZ, fft_size=FFT_SIZE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE_HZ, fft_size=FFT_SIZE) if aperiodicity else None
    return WorldFeatures(f0=f0, mcep=sp_to_mcep(sp), ap=ap)


def with_aperiodicity(samples: np.ndarray, features: WorldFeatures) -> WorldFeatures:
    """`features` (analysed from `samples`) with their aperiodicity, analysed now if it was left out."""
    if features.ap is not None:
        return features
    x = np.ascontiguousarray(samples, dtype=np.float64)
    t = np.arange(features.f0.size) * (FRAME_PERIOD_MS / 1000.0)
    ap = pyworld.d4c(x, np.ascontiguousarray(features.f0, dtype=np.float64), t, SAMPLE_RATE_HZ, fft_size=FFT_SIZE)
    return WorldFeatures(f0=features.f0, mcep=features.mcep, ap=ap)


def sp_to_mcep(sp: np.ndarray) -> np.ndarray:
    """pysptk.sp2mc(sp, ORDER, ALPHA), all frames at once: the frequency transform (freqt) is
    linear, so it is one matrix product instead of a recursion per frame (5x faster; equal to
    pysptk's to rounding, tests/test_piper_vc_rate.py)."""
    # A tiny floor keeps log() finite in digital silence.
    c = np.fft.irfft(np.log(np.maximum(np.asarray(sp, dtype=np.float64), 1e-16)), axis=-1)
    c[..., 0] /= 2.0
    return c @ _to_mcep_matrix(c.shape[-1])


def mcep_to_sp(mcep: np.ndarray) -> np.ndarray:
    """pysptk.mc2sp(mcep, ALPHA, FFT_SIZE), all frames at once (see sp_to_mcep)."""
    c = np.asarray(mcep, dtype=np.float64) @ _from_mcep_matrix()
    c[..., 0] *= 2.0
    # The real cepstrum mirrored to a full FFT frame; its spectrum is real (the log power).
    symmetric = np.concatenate([c, c[..., -2:0:-1]], axis=-1)
    return np.exp(np.fft.rfft(symmetric, axis=-1).real)


@functools.lru_cache(maxsize=4)
def _to_mcep_matrix(length: int) -> np.ndarray:
    """(length, ORDER + 1): row k = freqt(e_k, ORDER, ALPHA), cepstrum -> mel-cepstrum."""
    eye = np.eye(length)
    return np.stack([pysptk.freqt(eye[k], ORDER, ALPHA) for k in range(length)])


@functools.lru_cache(maxsize=1)
def _from_mcep_matrix() -> np.ndarray:
    """(ORDER + 1, FFT_SIZE // 2 + 1): row k = freqt(e_k, FFT_SIZE // 2, -ALPHA)."""
    eye = np.eye(ORDER + 1)
    return np.stack([pysptk.freqt(eye[k], FFT_SIZE // 2, -ALPHA) for k in range(ORDER + 1)])


def synthesise(features: WorldFeatures) -> np.ndarray:
    """WORLD synthesis back to float32 at SAMPLE_RATE_HZ."""
    sp = mcep_to_sp(features.mcep)
    y = pyworld.synthesize(np.ascontiguousarray(features.f0, dtype=np.float64), sp,
                           np.ascontiguousarray(features.ap, dtype=np.float64),
                           SAMPLE_RATE_HZ, FRAME_PERIOD_MS)
    return y.astype(np.float32)


@functools.lru_cache(maxsize=64)
def _warp_matrix_cached(alpha_shift_milli: int) -> np.ndarray:
    shift = alpha_shift_milli / 1e6
    eye = np.eye(ORDER + 1)
    # Column k = freqt(e_k): freqt is linear, so W @ c == freqt(c) for every frame c.
    cols = [pysptk.freqt(eye[k], ORDER, shift) for k in range(ORDER + 1)]
    return np.stack(cols, axis=1)


def warp_matrix(alpha_shift: float) -> np.ndarray:
    """(D, D) matrix applying an all-pass frequency warp by `alpha_shift` to a mel-cepstrum.
    Positive shifts move spectral features (formants) down in frequency, negative up,
    like a longer/shorter vocal tract. Quantised to 1e-6 so it can be cached."""
    return _warp_matrix_cached(int(round(alpha_shift * 1e6)))


def warp_mcep(mcep: np.ndarray, alpha_shift: float) -> np.ndarray:
    if abs(alpha_shift) < 1e-9:
        return mcep.copy()
    return mcep @ warp_matrix(alpha_shift).T
