"""Intelligibility checks for piper-vc: Whisper transcripts, word-error counts, and the one search
for "the strongest value that keeps speech intelligible" that enrollment uses.

Not here: what is being strengthened (adaptation.choose_scale says that) or any synthesis.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from voxmith.asr import get_transcriber
from voxmith.text import word_error_rate


def transcribe_clip(samples: np.ndarray, sample_rate_hz: int) -> str:
    """English transcript of one clip, from the studio's shared Whisper model (loaded once)."""
    return get_transcriber().transcribe(samples, sample_rate_hz, language="en").text


def word_errors(reference: str, hypothesis: str) -> int:
    """Substituted, deleted and inserted words of `hypothesis` against `reference`."""
    errors = word_error_rate(reference, hypothesis)
    return errors.substitutions + errors.deletions + errors.insertions


def strongest_within_tolerance(grid: Sequence[float], errors: Callable[[float], int], tolerance: int, *,
                               baseline: float = 0.0, stage: str = "checking intelligibility",
                               progress: Optional[Callable[[str, int, int], None]] = None) -> float:
    """The largest value of `grid` above `baseline` whose `errors(value)` are at most
    `errors(baseline) + tolerance`; `baseline` when none is. Values are tried strongest first and
    the search stops at the first that passes, so a strong value costs one check."""
    steps = sorted(grid, reverse=True)
    if progress is not None:
        progress(stage, 0, len(steps))
    floor = errors(baseline)
    for k, value in enumerate(s for s in steps if s > baseline):
        if progress is not None:
            progress(stage, k + 1, len(steps))
        if errors(value) <= floor + tolerance:
            return float(value)
    return float(baseline)


__all__ = ["transcribe_clip", "word_errors", "strongest_within_tolerance"]
