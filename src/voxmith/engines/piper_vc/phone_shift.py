"""How the target says each sound, as a per-phone envelope deviation learnt at enrollment.

The statistics map (conversion.py) moves every frame of the base voice by one voice-wide mean and
spread, so how the target's vowels or sibilants differ from each other is left to the ridge and the
network. Here the parallel data (parallel.py: the base voice saying each clip's words, DTW-aligned
to the clip) is grouped by Piper's phone timings of the base voice's take: each phone's mean
mel-cepstral difference (clip minus base voice), shrunk toward the mean over all speech frames,
less that mean, is the phone's *deviation* from the voice-wide shift. At synthesis each frame of
the base take gets its phone's deviation, smoothed in time, added to the converted envelope at a
strength (PiperVCSettings.phone_mix): on top of the whole conversion, so the guard's share of the
envelope change scales it as it scales the rest. Measured: docs/piper_vc_tuning.md ("Each phone's
own deviation").

Pure numpy on arrays; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from voxmith.engines.piper_vc import render, world
from voxmith.engines.piper_vc.phones import Alignment, token_under_frames

# Piper's pad token between phones (VITS spreads sound over it) and every frame outside a token:
# pooled as one class with a row of its own; every other token (`^`, `$`, spaces and punctuation
# too, which Piper also times) is "speech" with its own row. The labelling the defaults were
# measured with; one that pools the silent tokens with the pauses and gives pads and stress marks to
# their phones traded worse (docs/piper_vc_tuning.md).
PAUSE = "_"
# Each phone's mean is pulled toward the all-speech mean with the weight of this many frames (a
# phone heard in a handful of frames says little of its own).
SHRINK_FRAMES = 10.0
# The deviations change with the phone; smoothed in time over this Hann window so the envelope glides
# from sound to sound instead of stepping at each phone boundary.
SMOOTHING_MS = 160.0
KEYS = {"tokens": "phones.tokens", "deviation": "phones.deviation"}


def frame_phones(alignment: Optional[Alignment], n_frames: int, sample_rate_hz: int, frame_period_ms: float,
                 offset: int = 0) -> Optional[np.ndarray]:
    """Piper's phone token at each analysis frame's centre (PAUSE between and around phones), for
    a take whose first `offset` samples were cut before the analysis; None without timings."""
    if not alignment:
        return None
    index, inside = token_under_frames(alignment, n_frames, sample_rate_hz, frame_period_ms, offset)
    return np.where(inside, np.array([token for token, _, _ in alignment])[index], PAUSE)


@dataclass
class PhoneDeviations:
    """Per phone token, its envelope deviation (mel-cepstral orders 0.. of the conversion; order 0,
    loudness, is kept at 0: the rendering leaves the base voice's loudness)."""

    tokens: Tuple[str, ...]
    deviation: np.ndarray  # (len(tokens), D)

    def per_frame(self, labels: np.ndarray) -> np.ndarray:
        """(len(labels), D): each frame's phone deviation; 0 for a phone enrollment never heard."""
        rows = {token: k + 1 for k, token in enumerate(self.tokens)}  # row 0: no deviation
        table = np.vstack([np.zeros((1, self.deviation.shape[1])), self.deviation])
        return table[np.array([rows.get(str(label), 0) for label in labels], dtype=np.int64)]

    def to_conditioning(self) -> Dict[str, np.ndarray]:
        return {KEYS["tokens"]: np.array(self.tokens, dtype=str),
                KEYS["deviation"]: self.deviation.astype(np.float32)}

    @classmethod
    def from_conditioning(cls, cond) -> Optional["PhoneDeviations"]:
        """None for a conditioning without them (the base voice gave no phone timings)."""
        if KEYS["tokens"] not in cond or KEYS["deviation"] not in cond:
            return None
        tokens = tuple(str(t) for t in np.asarray(cond[KEYS["tokens"]]).reshape(-1))
        return cls(tokens, np.asarray(cond[KEYS["deviation"]], dtype=np.float64))


def fit(differences: Sequence[np.ndarray], labels: Sequence[np.ndarray],
        shrink_frames: float = SHRINK_FRAMES) -> Optional[PhoneDeviations]:
    """From aligned (frames, D) differences (target minus base voice, on the base voice's frames)
    and each frame's phone: every phone's deviation from the mean over all speech frames. None when
    no speech frame was labelled."""
    if not differences:
        return None
    diff = np.concatenate([np.asarray(d, dtype=np.float64) for d in differences])
    label = np.concatenate([np.asarray(lab) for lab in labels])
    speech = label != PAUSE
    if not speech.any():
        return None
    overall = diff[speech].mean(axis=0)
    tokens = sorted(set(label[speech].tolist()))
    rows = []
    for token in tokens:
        mine = label == token
        rows.append((diff[mine].sum(axis=0) + shrink_frames * overall) / (mine.sum() + shrink_frames) - overall)
    if (~speech).any():
        tokens.append(PAUSE)
        rows.append(diff[~speech].mean(axis=0) - overall)
    deviation = np.stack(rows)
    deviation[:, 0] = 0.0
    return PhoneDeviations(tuple(tokens), deviation)


def shifted(converted: world.WorldFeatures, deviations: PhoneDeviations, alignment: Optional[Alignment],
            mix: float) -> world.WorldFeatures:
    """`converted` (features of a base-voice take whose phone timings are `alignment`) with `mix`
    times each frame's phone deviation, smoothed in time, added to its envelope; unchanged without
    timings."""
    labels = frame_phones(alignment, converted.mcep.shape[0], world.SAMPLE_RATE_HZ, world.FRAME_PERIOD_MS)
    if labels is None:
        return converted
    shift = render.smooth_in_time(deviations.per_frame(labels), SMOOTHING_MS)
    width = min(shift.shape[1], converted.mcep.shape[1])
    mcep = converted.mcep.copy()
    mcep[:, :width] += mix * shift[:, :width]
    return world.WorldFeatures(converted.f0, mcep, converted.ap)


__all__ = ["KEYS", "PAUSE", "PhoneDeviations", "SHRINK_FRAMES", "SMOOTHING_MS", "fit", "frame_phones", "shifted"]
