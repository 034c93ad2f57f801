"""Is a decoded clip usable as voice material? Silence and too-short clips are rejected here."""

from __future__ import annotations

import numpy as np

from voxmith.audio.dsp import SILENCE_FLOOR, sound_bounds, to_mono
from voxmith.audio.io import Audio
from voxmith.errors import AudioError

# Less sound than this cannot carry a voice (the speaker encoder's window alone is 1.6 s).
MIN_CLIP_SECONDS = 1.0


def check_usable(audio: Audio, min_seconds: float = MIN_CLIP_SECONDS) -> None:
    """Raise `AudioError` if the clip is all silence or has less than `min_seconds` of sound."""
    mono = to_mono(audio.samples)
    name = audio.source or "audio"
    if float(np.max(np.abs(mono))) < SILENCE_FLOOR:
        raise AudioError(f"'{name}' is silent (no sound above -80 dBFS). Check the recording.")
    start, end = sound_bounds(mono, audio.sample_rate_hz)
    sound_s = (end - start) / audio.sample_rate_hz
    if sound_s < min_seconds:
        raise AudioError(
            f"'{name}' is too short to use: {sound_s:.2f} s of sound, at least {min_seconds:.1f} s "
            "is needed. Use a longer clip of the speaker."
        )
