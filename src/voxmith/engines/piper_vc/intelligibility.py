"""Intelligibility checks for piper-vc: Whisper transcripts and word-error counts (used by the
warp search's enrollment and by the guard, guard.py).

Not here: what is being backed off (guard.py) or any synthesis.
"""

from __future__ import annotations

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


__all__ = ["transcribe_clip", "word_errors"]
