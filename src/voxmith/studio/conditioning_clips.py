"""Which audio an engine conditions on: a voice's clips, bounded in length.

Engines align and analyse whole clips (piper-vc's DTW needs memory that grows with the square of a
clip's length: one 10-minute clip took 21 GB). So before conditioning, a clip longer than
`MAX_CLIP_S` is cut at pauses into pieces (the dataset slicer's cuts, at most `PIECE_MAX_S` long),
and when the voice holds more than `MAX_TOTAL_S` of audio, the pieces with the densest speech are
kept up to that total, in their original order. Voices within both limits, as most are, pass
through unchanged. The selection is a pure function of the clips, and it is part of the
conditioning cache key whenever it changes anything (see `selection_tag`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np

from voxmith.audio import Audio, resample
from voxmith.audio.dsp import frame_rms_db

MAX_CLIP_S = 30.0  # longer clips are cut into pieces
PIECE_MIN_S, PIECE_MAX_S = 2.0, 15.0
MAX_TOTAL_S = 120.0  # conditioning uses at most this much audio (2 minutes)
POLICY = "clips1"  # changes whenever the rules above do: it is part of the cache key
SPEECH_WITHIN_DB = 30.0  # a 10 ms frame within this of the piece's loud frames counts as speech
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSelection:
    clips: List[Audio]
    total_s: float  # all of the voice's clips
    used_s: float  # what the engine gets
    changed: bool

    def note(self, who: str) -> str:
        return (f"Note: {who} has {self.total_s / 60:.1f} min of audio; conditioning uses the "
                f"{self.used_s / 60:.1f} min with the densest speech (pieces cut at pauses, at most "
                f"{MAX_TOTAL_S / 60:g} min in all, keeping memory bounded).")


def needs_selection(durations_s: Sequence[float]) -> bool:
    return any(d > MAX_CLIP_S for d in durations_s) or sum(durations_s) > MAX_TOTAL_S


def selection_tag(durations_s: Sequence[float]) -> str:
    """What to add to the conditioning cache key: empty for voices passed through unchanged (so
    their existing cache entries stay valid), the policy version otherwise."""
    return f"+{POLICY}" if needs_selection(durations_s) else ""


def clip_durations(paths: Sequence[Path]) -> List[float]:
    """Each file's duration from its header (cheap); decoded only where the header cannot say (m4a,
    opus...)."""
    from voxmith.audio.io import header_duration_s
    from voxmith.studio.voices import load_clip

    durations = []
    for path in paths:
        duration = header_duration_s(path)
        durations.append(duration if duration is not None else load_clip(path).duration_s)
    return durations


def _speech_density(samples: np.ndarray, rate_hz: int) -> float:
    levels = frame_rms_db(samples, rate_hz, 10)
    if levels.size == 0:
        return 0.0
    loud = np.percentile(levels, 95)
    return float(np.mean(levels > loud - SPEECH_WITHIN_DB))


def _pieces(clip: Audio) -> List[Audio]:
    if clip.duration_s <= MAX_CLIP_S:
        return [clip]
    from voxmith.datasets.slicing import VAD_RATE_HZ, plan_segments

    mono = clip.samples if clip.samples.ndim == 1 else clip.samples.mean(axis=1)
    spans = plan_segments(resample(mono, clip.sample_rate_hz, VAD_RATE_HZ), PIECE_MIN_S, PIECE_MAX_S)
    rate = clip.sample_rate_hz
    return [Audio(np.ascontiguousarray(mono[int(s.start_s * rate):int(s.end_s * rate)]), rate)
            for s in spans if "too short" not in s.flags]


def select_clips(clips: Sequence[Audio], who: str = "this voice") -> ClipSelection:
    """The clips to condition on (see the module's docstring); says so when it changed them."""
    total_s = sum(c.duration_s for c in clips)
    if not needs_selection([c.duration_s for c in clips]):
        return ClipSelection(list(clips), total_s, total_s, False)
    pieces = [piece for clip in clips for piece in _pieces(clip)]
    if not pieces:  # no pauses found anywhere: keep the clips' beginnings rather than nothing
        pieces = [Audio(c.samples[: int(PIECE_MAX_S * c.sample_rate_hz)], c.sample_rate_hz) for c in clips]
    order = sorted(range(len(pieces)), key=lambda i: -_speech_density(pieces[i].samples, pieces[i].sample_rate_hz))
    chosen, used_s = [], 0.0
    for i in order:
        if used_s + pieces[i].duration_s > MAX_TOTAL_S and chosen:
            continue
        chosen.append(i)
        used_s += pieces[i].duration_s
    selection = ClipSelection([pieces[i] for i in sorted(chosen)], total_s, used_s, True)
    logger.warning(selection.note(who))
    return selection
