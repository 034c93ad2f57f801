"""Intelligibility checks for piper-vc: Whisper transcripts and word-error counts (used by the
warp search's enrollment and by the guard, guard.py).

Not here: what is being backed off (guard.py) or any synthesis.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Tuple

import numpy as np

from voxmith.asr import get_transcriber
from voxmith.asr.whisper import resolve_model
from voxmith.text import word_error_rate


def transcribe_clip(samples: np.ndarray, sample_rate_hz: int) -> str:
    """English transcript of one clip, from the studio's shared Whisper model (loaded once)."""
    return get_transcriber().transcribe(samples, sample_rate_hz, language="en").text


def transcriber_identity() -> Tuple[str, ...]:
    """What `transcribe_clip`'s transcripts depend on besides the audio: the Whisper model (its
    folder and weights file's size and time) and the libraries that run it. Finding it loads
    nothing."""
    folder = Path(resolve_model())
    weights = folder / "model.bin"
    stat = weights.stat() if weights.is_file() else None
    out = [f"whisper={folder}", f"weights={stat.st_size}-{int(stat.st_mtime)}" if stat else "weights=none"]
    for name in ("faster-whisper", "ctranslate2"):
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=none")
    return tuple(out)


def word_errors(reference: str, hypothesis: str) -> int:
    """Substituted, deleted and inserted words of `hypothesis` against `reference`."""
    errors = word_error_rate(reference, hypothesis)
    return errors.substitutions + errors.deletions + errors.insertions


__all__ = ["transcribe_clip", "transcriber_identity", "word_errors"]
