"""Signal processing on sample arrays: downmix, resample, normalise, trim.

Pure functions on numpy arrays; no file I/O.
"""

from __future__ import annotations

import warnings

import numpy as np
import soxr

# Levels below this count as digital silence (-80 dBFS).
SILENCE_FLOOR = 1e-4


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average all channels. Accepts (frames,) or (frames, channels)."""
    if samples.ndim == 1:
        return samples
    return samples.mean(axis=1).astype(np.float32, copy=False)


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """High-quality (soxr 'VHQ') sample-rate conversion."""
    if from_hz == to_hz:
        return samples
    return soxr.resample(samples, from_hz, to_hz, quality="VHQ").astype(np.float32)


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def peak_normalize(samples: np.ndarray, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale so the largest absolute sample sits at `peak_dbfs`. Silence is returned unchanged."""
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak < SILENCE_FLOOR:
        return samples
    return (samples * (db_to_gain(peak_dbfs) / peak)).astype(np.float32)


def integrated_loudness(samples: np.ndarray, sample_rate_hz: int) -> float:
    """EBU R128 / ITU-R BS.1770 integrated loudness in LUFS (-inf for silence)."""
    import pyloudnorm

    # BS.1770 gates over 400 ms blocks; shorter clips are measured with one block of their length.
    block_s = min(0.4, samples.shape[0] / sample_rate_hz)
    if block_s <= 0.0:
        return float("-inf")
    meter = pyloudnorm.Meter(sample_rate_hz, block_size=block_s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(meter.integrated_loudness(samples.astype(np.float64)))


def loudness_normalize(samples: np.ndarray, sample_rate_hz: int, target_lufs: float = -23.0,
                       max_peak_dbfs: float = -1.0) -> np.ndarray:
    """Bring integrated loudness to `target_lufs`, then lower it if the peak would exceed
    `max_peak_dbfs` (a quiet target is better than clipping)."""
    loudness = integrated_loudness(samples, sample_rate_hz)
    if not np.isfinite(loudness):
        return samples
    out = samples * db_to_gain(target_lufs - loudness)
    peak = float(np.max(np.abs(out)))
    limit = db_to_gain(max_peak_dbfs)
    if peak > limit:
        out = out * (limit / peak)
    return out.astype(np.float32)


def frame_rms_db(samples: np.ndarray, sample_rate_hz: int, frame_ms: float = 20.0) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames."""
    frame = max(1, int(sample_rate_hz * frame_ms / 1000))
    n_frames = max(1, int(np.ceil(samples.shape[0] / frame)))
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: samples.shape[0]] = samples
    rms = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-10))


def sound_bounds(samples: np.ndarray, sample_rate_hz: int, threshold_db: float = -45.0,
                 frame_ms: float = 20.0) -> tuple[int, int]:
    """Sample indices (start, end) of the span between the first and last frame within
    `threshold_db` of the loudest frame; (0, 0) when everything is silence."""
    levels = frame_rms_db(samples, sample_rate_hz, frame_ms)
    loudest = float(levels.max())
    if loudest < 20 * np.log10(SILENCE_FLOOR):
        return 0, 0
    active = np.flatnonzero(levels > max(loudest + threshold_db, 20 * np.log10(SILENCE_FLOOR)))
    frame = max(1, int(sample_rate_hz * frame_ms / 1000))
    return int(active[0] * frame), int(min(samples.shape[0], (active[-1] + 1) * frame))


def trim_bounds(samples: np.ndarray, sample_rate_hz: int, threshold_db: float = -45.0,
                pad_ms: float = 100.0) -> tuple[int, int]:
    """(start, end) sample indices of `trim_silence`'s cut; (0, 0) when everything is silence."""
    start, end = sound_bounds(samples, sample_rate_hz, threshold_db)
    if end <= start:
        return 0, 0
    pad = int(sample_rate_hz * pad_ms / 1000)
    return max(0, start - pad), min(samples.shape[0], end + pad)


def trim_silence(samples: np.ndarray, sample_rate_hz: int, threshold_db: float = -45.0,
                 pad_ms: float = 100.0) -> np.ndarray:
    """Cut leading and trailing silence, keeping `pad_ms` of context on each side."""
    start, end = trim_bounds(samples, sample_rate_hz, threshold_db, pad_ms)
    return samples[start:end]
