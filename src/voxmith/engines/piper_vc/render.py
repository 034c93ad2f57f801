"""Rendering converted features as audio by modifying the base voice's own waveform.

WORLD analysis/resynthesis alone, with nothing converted, takes Piper's joe from DistillMOS ~4.1
to ~2.2: the vocoder's pulse-train excitation, not the conversion, is where most naturalness
went (benchmarks/results/). So the converted features are not resynthesised; joe's waveform is
changed in two steps and keeps its own excitation:
1. pitch: TD-PSOLA moves joe's pitch periods to the converted F0 (two-period Hann grains
   centred on pitch marks, re-spaced at the new period; the spectral envelope stays put);
2. timbre: a difference filter, the ratio of the converted to joe's spectral envelope (both
   from their mel-cepstra) applied frame by frame in the STFT domain. Energy (c0) is left as it
   is, as the conversion leaves it.
The aperiodicity correction of the residual network (postnet.py) has no counterpart here: the
noise in joe's excitation stays joe's.

Pure numpy/scipy on arrays at world.SAMPLE_RATE_HZ; no I/O.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import signal

from voxmith.engines.piper_vc import world

SR = world.SAMPLE_RATE_HZ
FRAME = int(round(SR * world.FRAME_PERIOD_MS / 1000.0))  # samples per WORLD frame (110)
STFT_SIZE = 1024  # 46 ms: long enough to resolve the envelope's formants at 22.05 kHz
MIN_GRAIN = 16  # samples; guards against degenerate periods


def pitch_marks(samples: np.ndarray, f0: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(marks, periods) in samples. In voiced frames one mark per pitch period, at the waveform's
    largest magnitude within a quarter period of where the previous mark predicts it (so marks
    keep the same phase of each cycle); in unvoiced frames one mark per WORLD frame. `periods`
    is the spacing to the next mark where that is a plausible period, else the F0 period."""
    magnitude = np.abs(samples)
    n = samples.size
    marks, periods = [], []
    t, voiced_run = 0, False
    while t < n:
        k = min(t // FRAME, f0.size - 1)
        if f0[k] > 0:
            period = max(int(SR / f0[k]), MIN_GRAIN)
            lo, hi = (t - period // 4, t + period // 4) if voiced_run else (t, t + period)
            lo, hi = max(lo, 0), min(hi, n)
            if hi <= lo:
                break
            mark = lo + int(np.argmax(magnitude[lo:hi]))
            if marks and mark <= marks[-1]:
                mark = marks[-1] + period
            marks.append(mark)
            periods.append(period)
            t, voiced_run = mark + period, True
        else:
            marks.append(t)
            periods.append(FRAME)
            t, voiced_run = t + FRAME, False
    marks_a, periods_a = np.asarray(marks, np.int64), np.asarray(periods, np.int64)
    marks_a, periods_a = marks_a[marks_a < n], periods_a[marks_a < n]
    if marks_a.size > 1:
        gap = np.r_[np.diff(marks_a), periods_a[-1]]
        plausible = (gap > periods_a // 2) & (gap < 3 * periods_a // 2)
        periods_a = np.where(plausible, gap, periods_a)
    return marks_a, periods_a


def psola(samples: np.ndarray, f0: np.ndarray, ratio: np.ndarray, weight_floor: float = 0.3) -> np.ndarray:
    """`samples` with the pitch of each voiced WORLD frame multiplied by `ratio` (per frame),
    duration unchanged. A ratio of 1 everywhere gives back the input up to grain overlap. The
    overlap-added grains are divided by their summed window, floored at `weight_floor`: where the
    pitch is lowered, grains spaced wider than their period leave dips in that sum between pitch
    pulses, and a low floor fills them by amplifying the pulses' decaying tails; a floor of 1
    leaves those dips as a lower voice has them and only evens out where grains pile up."""
    x = np.asarray(samples, dtype=np.float64)
    marks, periods = pitch_marks(x, f0)
    if marks.size < 3:
        return x.astype(np.float32)
    out = np.zeros(x.size + 4 * int(periods.max()) + 2)
    weight = np.zeros_like(out)
    t = float(marks[0])
    while t < x.size:
        j = int(np.searchsorted(marks, t))
        if j >= marks.size:
            j = marks.size - 1
        elif j > 0 and t - marks[j - 1] <= marks[j] - t:
            j -= 1
        centre, period = int(marks[j]), int(periods[j])
        k = min(centre // FRAME, f0.size - 1)
        r = float(ratio[k]) if f0[k] > 0 else 1.0
        window = np.hanning(2 * period + 3)[1:-1]
        lo, hi = max(centre - period, 0), min(centre + period + 1, x.size)
        w = window[lo - (centre - period): window.size - (centre + period + 1 - hi)]
        start = int(round(t)) - (centre - lo)
        if start >= 0:
            out[start:start + w.size] += x[lo:hi] * w
            weight[start:start + w.size] += w
        t += max(period / max(r, 1e-3), MIN_GRAIN)
    out, weight = out[:x.size], weight[:x.size]
    return (out / np.maximum(weight, weight_floor)).astype(np.float32)


def envelope_filter(samples: np.ndarray, log_gain_mcep: np.ndarray) -> np.ndarray:
    """Filter `samples` frame by frame with the magnitude response whose mel-cepstrum is
    `log_gain_mcep` (T, ORDER + 1): the difference of two mel-cepstra is the log ratio of their
    envelopes, so this turns one envelope into the other and leaves the excitation alone."""
    x = np.asarray(samples, dtype=np.float64)
    gain = np.sqrt(world.mcep_to_sp(log_gain_mcep))  # power ratio -> magnitude, (T, FFT_SIZE/2+1)
    freqs, times, spec = signal.stft(x, SR, nperseg=STFT_SIZE, noverlap=STFT_SIZE - FRAME, nfft=STFT_SIZE)
    rows = np.clip(np.round(times * 1000.0 / world.FRAME_PERIOD_MS).astype(np.int64), 0, gain.shape[0] - 1)
    position = freqs * world.FFT_SIZE / SR  # STFT bin -> fractional WORLD bin
    low = np.minimum(np.floor(position).astype(np.int64), gain.shape[1] - 1)
    high = np.minimum(low + 1, gain.shape[1] - 1)
    frac = position - low
    g = gain[rows]
    g = g[:, low] * (1.0 - frac) + g[:, high] * frac
    _, y = signal.istft(spec * g.T, SR, nperseg=STFT_SIZE, noverlap=STFT_SIZE - FRAME, nfft=STFT_SIZE)
    y = y[:x.size]
    if y.size < x.size:
        y = np.pad(y, (0, x.size - y.size))
    return y.astype(np.float32)


def render(samples: np.ndarray, source: world.WorldFeatures, converted: world.WorldFeatures,
           spectral_scale: float = 1.0, smoothing_ms: float = 0.0, psola_floor: float = 0.3) -> np.ndarray:
    """Audio for `converted` made from the base voice's `samples` (analysed as `source`).
    `spectral_scale` < 1 applies only that share of the envelope change (the guard's back-off);
    `smoothing_ms` > 0 smooths the envelope change in time (smooth_in_time); `psola_floor`: psola's
    weight_floor."""
    n = min(source.f0.size, converted.f0.size)
    both = (source.f0[:n] > 0) & (converted.f0[:n] > 0)
    ratio = np.ones(source.f0.size)
    ratio[:n][both] = converted.f0[:n][both] / source.f0[:n][both]
    shifted = psola(samples, source.f0, ratio, weight_floor=psola_floor)
    diff = np.zeros_like(source.mcep)
    diff[:n] = converted.mcep[:n] - source.mcep[:n]
    diff[:, 0] = 0.0  # loudness stays the base voice's (the output is peak-normalised anyway)
    diff *= float(spectral_scale)
    return envelope_filter(shifted, smooth_in_time(diff, smoothing_ms))


def smooth_in_time(frames: np.ndarray, smoothing_ms: float) -> np.ndarray:
    """`frames` (T, D) averaged over a Hann window `smoothing_ms` wide (normalised, so a constant
    stays constant; the edges are padded with their own values). Under one frame: unchanged."""
    width = int(round(smoothing_ms / world.FRAME_PERIOD_MS))
    if width < 2 or frames.shape[0] < 2:
        return frames
    window = np.hanning(width + 2)[1:-1]
    window /= window.sum()
    half = window.size // 2
    padded = np.pad(frames, ((half, window.size - 1 - half), (0, 0)), mode="edge")
    return signal.fftconvolve(padded, window[:, None], mode="valid", axes=0)


__all__ = ["pitch_marks", "psola", "envelope_filter", "render", "smooth_in_time"]
