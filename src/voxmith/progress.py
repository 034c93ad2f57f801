"""Progress reporting for long work, independent of any UI.

Core code calls a plain `ProgressCallback` with `Progress` events; the CLI turns them into tqdm
bars and the web UI into its own progress display. Passing `None` means "nobody is watching".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional


@dataclass(frozen=True)
class Progress:
    stage: str  # short human label, e.g. "embedding clips"
    done: int
    total: Optional[int] = None  # None when the amount of work is unknown
    detail: str = ""
    # What `done` and `total` count, singular, as a bar shows it ("3/12 sentence", "2.1 clip/s"):
    # "sentence", "clip", "file", "s" (seconds of audio); "" when they count steps of no other kind.
    unit: str = ""


ProgressCallback = Callable[[Progress], None]


def report(callback: Optional[ProgressCallback], stage: str, done: int, total: Optional[int] = None,
           detail: str = "", unit: str = "") -> None:
    """Send one event if somebody is listening."""
    if callback is not None:
        callback(Progress(stage, done, total, detail, unit))
