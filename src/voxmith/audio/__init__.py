"""Audio I/O and signal processing: read any clip, write atomically, resample, normalise, trim.

Nothing here knows about voices, engines or the workspace.
"""

from voxmith.audio.io import Audio, load_audio, save_audio, SUPPORTED_NATIVE_FORMATS
from voxmith.audio.dsp import (
    to_mono,
    resample,
    peak_normalize,
    loudness_normalize,
    trim_bounds,
    trim_silence,
)
from voxmith.audio.checks import check_usable, MIN_CLIP_SECONDS
from voxmith.audio.analysis import ClipStats, analyse_audio

__all__ = [
    "Audio",
    "load_audio",
    "save_audio",
    "SUPPORTED_NATIVE_FORMATS",
    "to_mono",
    "resample",
    "peak_normalize",
    "loudness_normalize",
    "trim_bounds",
    "trim_silence",
    "check_usable",
    "MIN_CLIP_SECONDS",
    "ClipStats",
    "analyse_audio",
]
