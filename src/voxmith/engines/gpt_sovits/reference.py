"""Choosing GPT-SoVITS' reference from a voice's clips.

GPT-SoVITS clones from one reference of 3-10 s (the official code refuses others) with its
transcript; further clips may serve as auxiliary references, whose global styles are averaged with
the main one's. A voice in voxmith is a set of clips of any length, so this module picks, in each
clip, the best stretch that starts and ends in pauses:

- pauses are runs of at least `MIN_PAUSE_S` without speech (WebRTC VAD, as the voice analysis uses);
- a stretch runs from the middle of one pause to the middle of a later one and lasts
  `MIN_S`-`MAX_S` (inside the official 3-10 s, with a margin for resampling);
- its score is the clip's SNR estimate (the voice analysis' measure) plus 10 dB per unit of the
  stretch's speech ratio, less clipping, less 0.5 dB per second away from `TARGET_S` (long enough
  for the prompt to carry the voice, short enough to leave the model room).
The best stretch over all clips is the reference; the best stretch of each other clip, best first,
are the auxiliary references. A clip without pauses is cut around its densest speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from voxmith.audio import Audio
from voxmith.audio.analysis import VAD_FRAME_MS, estimate_snr_db, speech_frames
from voxmith.audio.dsp import resample, to_mono
from voxmith.errors import AudioError

RATE_HZ = 16000
MIN_S, MAX_S, TARGET_S = 3.2, 9.6, 7.0
MIN_PAUSE_S = 0.2
CLIP_LEVEL = 0.999


@dataclass(frozen=True)
class Stretch:
    """A stretch of one clip, with why it was chosen."""

    clip_index: int
    clip_label: str
    start_s: float
    end_s: float
    score: float
    snr_db: float
    speech_ratio: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def samples(self, clip: Audio, rate_hz: int) -> np.ndarray:
        """The stretch as mono float32 at `rate_hz`."""
        mono = to_mono(clip.samples)
        a = int(round(self.start_s * clip.sample_rate_hz))
        b = int(round(self.end_s * clip.sample_rate_hz))
        return resample(mono[a:b], clip.sample_rate_hz, rate_hz).astype(np.float32)


def _pause_cuts(flags: np.ndarray, frame_s: float) -> List[float]:
    """Times (s) in the middle of each pause, plus the clip's start and end."""
    cuts = [0.0]
    index, n = 0, flags.shape[0]
    min_frames = max(1, int(round(MIN_PAUSE_S / frame_s)))
    while index < n:
        if flags[index]:
            index += 1
            continue
        end = index
        while end < n and not flags[end]:
            end += 1
        if end - index >= min_frames or index == 0 or end == n:
            cuts.append((index + end) / 2 * frame_s)
        index = end
    cuts.append(n * frame_s)
    return sorted(set(cuts))


def _score(flags: np.ndarray, frame_s: float, start: float, end: float, snr_db: float, clipped: float) -> Tuple[float, float]:
    a, b = int(start / frame_s), max(int(start / frame_s) + 1, int(end / frame_s))
    ratio = float(flags[a:b].mean()) if b > a else 0.0
    return snr_db + 10.0 * ratio - 100.0 * clipped - 0.5 * abs((end - start) - TARGET_S), ratio


def best_stretch(clip: Audio, clip_index: int) -> Optional[Stretch]:
    """The best 3.2-9.6 s stretch of `clip`, or None when it holds less than 3.2 s of audio."""
    mono = to_mono(clip.samples)
    if mono.shape[0] < MIN_S * clip.sample_rate_hz:
        return None
    mono16 = resample(mono, clip.sample_rate_hz, RATE_HZ)
    flags = speech_frames(mono16, RATE_HZ)
    if not flags.any():
        return None
    frame_s = VAD_FRAME_MS / 1000.0
    duration = mono.shape[0] / clip.sample_rate_hz
    snr = estimate_snr_db(mono16, RATE_HZ, flags)
    clipped = float(np.mean(np.abs(mono) >= CLIP_LEVEL))
    cuts = [c for c in _pause_cuts(flags, frame_s) if c <= duration]
    best: Optional[Stretch] = None
    for i, start in enumerate(cuts):
        for end in cuts[i + 1:]:
            if end - start > MAX_S:
                break
            if end - start < MIN_S:
                continue
            score, ratio = _score(flags, frame_s, start, end, snr, clipped)
            if best is None or score > best.score:
                best = Stretch(clip_index, clip.label, start, end, score, snr, ratio)
    if best is None:  # no pause-bounded stretch fits: the densest window of TARGET_S (or the clip)
        length = min(TARGET_S, duration)
        starts = np.arange(0.0, max(duration - length, 0.0) + 1e-9, 0.5)
        scored = [(_score(flags, frame_s, s, s + length, snr, clipped), s) for s in starts]
        (score, ratio), start = max(scored, key=lambda item: item[0][0])
        best = Stretch(clip_index, clip.label, float(start), float(start + length), score, snr, ratio)
    return best


def choose_references(clips: Sequence[Audio], max_aux: int) -> Tuple[Stretch, List[Stretch]]:
    """(the reference, up to `max_aux` auxiliary references from the other clips, best first)."""
    stretches = [s for s in (best_stretch(clip, i) for i, clip in enumerate(clips)) if s is not None]
    if not stretches:
        raise AudioError("GPT-SoVITS needs a reference of 3 to 10 s of speech, and none of the voice's clips "
                         f"has {MIN_S:.1f} s of speech. Add a longer clip.")
    stretches.sort(key=lambda s: -s.score)
    return stretches[0], stretches[1:1 + max(0, max_aux)]
