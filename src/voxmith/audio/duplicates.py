"""Which audio files hold the same recording: byte for byte, or the same sound in another file
(re-encoded, another format, rate or bit depth, a header rewritten).

Users add the same take twice (a WAV and its MP3, an export made twice); counted twice it weighs
double in a voice and, in a dataset, the same line lands in train and validation. Files are
compared by their length first (from the header, no decoding), and only files of about the same
length are decoded: their loudness envelopes (10 ms frames, in dB) must match at some small lag
(an MP3 encoder's delay) almost exactly. Two takes of the same words by the same speaker never do:
their pauses and syllables fall elsewhere.

Not here: what to do about it (the voice report counts such a clip once; a dataset leaves it out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from voxmith.audio.dsp import frame_rms_db, to_mono
from voxmith.audio.io import load_audio
from voxmith.audio.stream import duration_s
from voxmith.errors import AudioError
from voxmith.fsutil import file_digest

DURATION_TOLERANCE_S = 0.1  # a re-encoding pads or trims a few ms; other recordings differ by more
FRAME_MS = 10.0
MAX_LAG_FRAMES = 10  # 100 ms: MP3/AAC encoder delay and padding
MIN_CORRELATION = 0.98  # of the envelopes in dB (above a -60 dB floor) at the best lag
FLOOR_DB = -60.0
ENVELOPE_RATE_HZ = 16000


def _envelope(path: Path) -> Optional[np.ndarray]:
    try:  # at one rate for every file: frames of the same length in time (22.05 kHz has no 10 ms frame)
        audio = load_audio(path, sample_rate_hz=ENVELOPE_RATE_HZ)
    except AudioError:  # unreadable files are reported by whoever reads them for real
        return None
    return np.maximum(frame_rms_db(to_mono(audio.samples), audio.sample_rate_hz, FRAME_MS), FLOOR_DB)


def envelopes_match(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two loudness envelopes (dB per frame) are one recording's, at a lag of up to
    MAX_LAG_FRAMES frames."""
    best = -1.0
    for lag in range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1):
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        if n < 50:  # under half a second: too little to tell
            return False
        x, y = x[:n], y[:n]
        if np.std(x) < 1e-6 or np.std(y) < 1e-6:
            continue
        best = max(best, float(np.corrcoef(x, y)[0, 1]))
    return best >= MIN_CORRELATION


def same_recordings(paths: Sequence[Path]) -> Dict[Path, Path]:
    """{a later file: the first file holding the same recording} over `paths`, in order (a path
    given twice is one file, not a copy)."""
    paths = list(dict.fromkeys(paths))
    first_by_bytes: Dict[str, Path] = {}
    same: Dict[Path, Path] = {}
    kept: List[Path] = []
    for path in paths:
        digest = file_digest(path)  # cached: the same files are fingerprinted by whoever asks
        if digest in first_by_bytes:
            same[path] = first_by_bytes[digest]
        else:
            first_by_bytes[digest] = path
            kept.append(path)
    lengths = {p: duration_s(p) for p in kept}
    envelopes: Dict[Path, Optional[np.ndarray]] = {}

    def envelope(p: Path) -> Optional[np.ndarray]:
        if p not in envelopes:
            envelopes[p] = _envelope(p)
        return envelopes[p]

    for k, path in enumerate(kept):
        if lengths[path] is None:
            continue
        for earlier in kept[:k]:
            if earlier in same or lengths[earlier] is None:
                continue
            if abs(lengths[path] - lengths[earlier]) > DURATION_TOLERANCE_S:
                continue
            a, b = envelope(earlier), envelope(path)
            if a is not None and b is not None and envelopes_match(a, b):
                same[path] = earlier
                break
    return same
