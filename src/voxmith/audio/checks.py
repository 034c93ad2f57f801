"""Is a decoded clip usable as voice material? Silence, too-short clips and rates too low for
speech (a damaged header) are rejected here."""

from __future__ import annotations

import numpy as np

from voxmith.audio.dsp import SILENCE_FLOOR, sound_bounds, to_mono
from voxmith.audio.io import Audio
from voxmith.errors import AudioError

# Less sound than this cannot carry a voice (the speaker encoder's window alone is 1.6 s).
MIN_CLIP_SECONDS = 1.0
# Below this a file holds no intelligible speech (8 kHz telephone audio is accepted, with a flag):
# such a rate is a damaged header, and resampling its frames to 16 kHz would take gigabytes.
MIN_SAMPLE_RATE_HZ = 4000


def check_usable(audio: Audio, min_seconds: float = MIN_CLIP_SECONDS) -> None:
    """Raise `AudioError` if the clip is all silence (or a constant offset), has less than
    `min_seconds` of sound, or a sample rate too low for speech."""
    name = audio.source or "audio"
    check_sample_rate(audio.sample_rate_hz, name)
    mono = to_mono(audio.samples)
    mono = mono - float(np.mean(mono))  # a constant offset (DC) is no sound
    if float(np.max(np.abs(mono))) < SILENCE_FLOOR:
        raise AudioError(f"'{name}' is silent (no sound above -80 dBFS). Check the recording.")
    start, end = sound_bounds(mono, audio.sample_rate_hz)
    sound_s = (end - start) / audio.sample_rate_hz
    if sound_s < min_seconds:
        raise AudioError(
            f"'{name}' is too short to use: {sound_s:.2f} s of sound, at least {min_seconds:.1f} s "
            "is needed. Use a longer clip of the speaker."
        )


def check_sample_rate(rate_hz: int, name: str) -> None:
    """Raise `AudioError` for a rate too low to hold speech (a damaged header, most likely)."""
    if rate_hz < MIN_SAMPLE_RATE_HZ:
        raise AudioError(f"'{name}' has a sample rate of {rate_hz} Hz, too low to hold speech "
                         f"(at least {MIN_SAMPLE_RATE_HZ} Hz; 16 kHz or more is best): its header may be "
                         "damaged. Export the recording again as WAV or FLAC.")
