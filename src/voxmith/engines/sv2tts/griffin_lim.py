"""Griffin-Lim inversion of the synthesizer's mels: the fast fallback vocoder (official
`synthesizer/audio.py`, `inv_mel_spectrogram`), done with librosa.

The mel in [-4, 4] is mapped back to decibels and amplitudes, spread to a linear spectrum with the
pseudo-inverse of the mel filters, raised to the power 1.5 (sharpens harmonics), and given a phase
by plain Griffin-Lim (no momentum, as officially) from random phases drawn from a seeded
generator; the pre-emphasis is then undone. Frames are zero-padded at the ends (the default of
librosa 0.9.2, the version the official code pins).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .hparams import SAMPLE_RATE_HZ, SignalConfig
from .wavernn import de_emphasis


@lru_cache(maxsize=4)
def _inverse_mel_basis(signal: SignalConfig) -> np.ndarray:
    import librosa

    basis = librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=signal.n_fft, n_mels=signal.mel_bands,
                                fmin=signal.fmin_hz, fmax=signal.fmax_hz)
    return np.linalg.pinv(basis)


def mel_to_linear_amplitude(mel: np.ndarray, signal: SignalConfig = SignalConfig()) -> np.ndarray:
    """(mel_bands, frames) in [-max_abs, max_abs] -> linear magnitude spectrum (n_fft/2+1, frames)."""
    m = signal.max_abs_value
    db = (np.clip(mel, -m, m) + m) * -signal.min_level_db / (2 * m) + signal.min_level_db
    amplitude = np.power(10.0, (db + signal.ref_level_db) * 0.05)
    return np.maximum(1e-10, _inverse_mel_basis(signal) @ amplitude)


def griffin_lim(mel: np.ndarray, seed: int, signal: SignalConfig = SignalConfig()) -> np.ndarray:
    """Waveform (float64) of a synthesizer mel, with the random start phases drawn from `seed`."""
    import librosa

    spectrum = mel_to_linear_amplitude(np.asarray(mel, dtype=np.float64), signal) ** signal.griffin_lim_power
    wav = librosa.griffinlim(spectrum, n_iter=signal.griffin_lim_iters, hop_length=signal.hop_samples,
                             win_length=signal.window_samples, n_fft=signal.n_fft, momentum=0.0,
                             init="random", random_state=np.random.RandomState(seed), pad_mode="constant")
    return de_emphasis(wav, signal.preemphasis)
