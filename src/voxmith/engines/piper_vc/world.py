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
    ap: np.ndarray  # (T, FFT_SIZE // 2 + 1)

    @property
    def voiced(self) -> np.ndarray:
        return self.f0 > 0


def analyse(samples: np.ndarray, *, accurate_f0: bool = False) -> WorldFeatures:
    """WORLD analysis of float mono at SAMPLE_RATE_HZ. `accurate_f0` uses Harvest (about 20x
    slower, fewer voicing errors; worth it only for the target at enrollment), else
    DIO + StoneMask, which is enough for Piper's clean output."""
    x = np.ascontiguousarray(samples, dtype=np.float64)
    if accurate_f0:
        f0, t = pyworld.harvest(x, SAMPLE_RATE_HZ, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ,
                                frame_period=FRAME_PERIOD_MS)
    else:
        f0, t = pyworld.dio(x, SAMPLE_RATE_HZ, f0_floor=F0_FLOOR_HZ, f0_ceil=F0_CEIL_HZ,
                            frame_period=FRAME_PERIOD_MS)
        f0 = pyworld.stonemask(x, f0, t, SAMPLE_RATE_HZ)
    sp = pyworld.cheaptrick(x, f0, t, SAMPLE_RATE_HZ, fft_size=FFT_SIZE)
    ap = pyworld.d4c(x, f0, t, SAMPLE_RATE_HZ, fft_size=FFT_SIZE)
    return WorldFeatures(f0=f0, mcep=sp_to_mcep(sp), ap=ap)


def sp_to_mcep(sp: np.ndarray) -> np.ndarray:
    # A tiny floor keeps log() finite in digital silence.
    return pysptk.sp2mc(np.maximum(sp, 1e-16), ORDER, ALPHA)


def mcep_to_sp(mcep: np.ndarray) -> np.ndarray:
    return pysptk.mc2sp(np.ascontiguousarray(mcep, dtype=np.float64), ALPHA, FFT_SIZE)


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
