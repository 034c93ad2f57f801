"""The target's speaking rate, as the base voice's `length_scale` that matches it.

Measured from durations: the median over the enrollment clips of (the clip's trimmed duration) /
(the base voice's trimmed duration saying the clip's transcript at length_scale 1). Both sides
are trimmed the same way (parallel.prepare_clip, trim_silence), so the ratio compares like with
like; voiced-frame counts did not (two F0 trackers, and real speech is voiced over more of its
length than Piper's): they overstated the ratio 1.2-1.9x (docs/piper_vc_tuning.md).

A duration ratio is not a length_scale: Piper's durations grow more slowly than its scale
(joe at 1.2 is about 8 % longer, not 20 %). The base voice's own curve, measured by saying
CURVE_SENTENCES at CURVE_SCALES, turns one into the other. It depends only on the base voice, so
it is measured once per base voice per process and kept (`curve_for`; base_cache.py keeps it
on disk between processes).

Not here: the parallel data the durations come from (parallel.py), synthesis (engine.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Dict, Hashable, Optional, Sequence, Tuple

import numpy as np

from voxmith.audio import trim_silence

# Plain sentences the base voice says to measure its curve; used by no benchmark, test, check or
# calibration elsewhere. Three, so one odd phrasing cannot bend the curve.
CURVE_SENTENCES = (
    "The farmer counted his sheep twice before he locked the gate for the night.",
    "Our neighbours painted their fence a pale shade of green last summer.",
    "If the letter arrives on Monday, please leave it on the kitchen table.",
)
# length_scale values the base voice is measured at (1 is the reference, and must be one of them).
# They span RATE_RANGE, so no rate a voice can get is extrapolated, every 0.1: joe's curve is
# uneven (durations are whole frames per phoneme: 1.05 gives 1.2 % longer, 1.25 12 %), and a
# 0.25 spacing put rates up to 0.05 too low (docs/piper_vc_tuning.md).
CURVE_SCALES = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
# The length_scale a voice may get. The upper end stays at engine 7's 1.2: on the shared voices
# whose speakers are slower (up to 1.5), matching them cost naturalness (DistillMOS) and made the
# guard back off further, at no gain in words (docs/piper_vc_tuning.md). Below 0.9 a ratio more
# likely means a bad transcript than a speaker that fast.
RATE_RANGE = (0.9, 1.2)
# Kokoro's styles speak more slowly than most speakers, so the measured rate often asked for
# faster than their own pace; sped up, they lost words and naturalness on 7 of the 8 shared voices
# that chose one (docs/piper_vc_tuning.md). A Kokoro base is never made faster than it speaks.
KOKORO_RATE_RANGE = (1.0, 1.2)
# Rates are rounded to this step: finer differences are below the synthesis jitter (4 %), and a
# few distinct rates let per-rate results of the base voice be reused (guard.py's floor).
RATE_STEP = 0.05


@dataclass(frozen=True)
class RateCurve:
    """The base voice's trimmed duration at each length_scale, relative to its duration at 1."""

    scales: Tuple[float, ...]
    ratios: Tuple[float, ...]

    def length_scale(self, duration_ratio: float) -> float:
        """The length_scale at which the base voice's duration is `duration_ratio` times its
        duration at 1: the curve inverted, piecewise linear, extended linearly beyond its ends."""
        x = np.asarray(self.ratios, dtype=np.float64)
        y = np.asarray(self.scales, dtype=np.float64)
        # Durations are whole frames per phoneme: guard against a flat or inverted step.
        x = np.maximum.accumulate(x + np.arange(x.size) * 1e-9)
        r = float(duration_ratio)
        if r < x[0]:
            return float(y[0] + (r - x[0]) * (y[1] - y[0]) / max(x[1] - x[0], 1e-9))
        if r > x[-1]:
            return float(y[-1] + (r - x[-1]) * (y[-1] - y[-2]) / max(x[-1] - x[-2], 1e-9))
        return float(np.interp(r, x, y))


# say(text, length_scale): the base voice's samples at `sample_rate_hz`.
Say = Callable[[str, float], np.ndarray]


def measure_curve(say: Say, sample_rate_hz: int, sentences: Sequence[str] = CURVE_SENTENCES,
                  scales: Sequence[float] = CURVE_SCALES) -> RateCurve:
    """The base voice's duration curve: summed trimmed durations of `sentences` at each scale,
    over the sum at scale 1."""
    if 1.0 not in scales:
        raise ValueError("the curve's scales must include 1.0, its reference")
    total = {s: sum(trim_silence(np.asarray(say(t, s)), sample_rate_hz).size for t in sentences) for s in scales}
    ordered = sorted(scales)
    return RateCurve(tuple(float(s) for s in ordered), tuple(total[s] / max(total[1.0], 1) for s in ordered))


_curves: Dict[Hashable, RateCurve] = {}
_curves_lock = threading.Lock()


def curve_for(key: Hashable, measure: Callable[[], RateCurve]) -> RateCurve:
    """The curve of the base voice `key` (the voice object itself will do), `measure()`d once
    per process: it does not depend on the target."""
    with _curves_lock:
        if key not in _curves:
            _curves[key] = measure()
        return _curves[key]


def duration_ratio(target_frames: Sequence[int], base_frames: Sequence[int]) -> Optional[float]:
    """Median over clips of target / base voice trimmed duration (frames of equal length on both
    sides); None without a clip."""
    ratios = [t / b for t, b in zip(target_frames, base_frames) if b > 0]
    return float(np.median(ratios)) if ratios else None


def rate_range_for(base_name: str) -> Tuple[float, float]:
    """The length_scale range a voice with base voice `base_name` may get: Kokoro's styles are
    never sped up (KOKORO_RATE_RANGE), joe may be (RATE_RANGE)."""
    return KOKORO_RATE_RANGE if base_name.startswith("kokoro:") else RATE_RANGE


def speaking_rate(ratio: Optional[float], curve: RateCurve, rate_range: Tuple[float, float] = RATE_RANGE,
                  step: float = RATE_STEP) -> float:
    """The length_scale for a target `ratio` times as long as the base voice: through `curve`,
    clipped to `rate_range`, rounded to `step`. 1 when nothing was measured."""
    if ratio is None or not np.isfinite(ratio) or ratio <= 0:
        return 1.0
    scale = float(np.clip(curve.length_scale(ratio), *rate_range))
    return round(round(scale / step) * step, 4)


__all__ = ["CURVE_SCALES", "CURVE_SENTENCES", "KOKORO_RATE_RANGE", "RATE_RANGE", "RATE_STEP", "RateCurve", "curve_for",
           "duration_ratio", "measure_curve", "rate_range_for", "speaking_rate"]
