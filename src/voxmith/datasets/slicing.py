"""Where to cut a long recording: at pauses, into segments of a wanted length.

Pauses come from two detectors that fail differently: Silero VAD (robust to noise, but it
smooths over the short gaps between phrases) and frame energy (sees every short gap in clean
speech). From a segment's start, the cut goes at the longest pause that keeps the segment
within [min, max] seconds; when continuous speech leaves no pause in range, the quietest point
is used and the segment is marked as a forced cut. Pure numpy on 16 kHz mono; no I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from voxmith.audio.dsp import frame_rms_db
from voxmith.torch_threads import process_threads, torch_threads

VAD_RATE_HZ = 16000
FRAME_MS = 10
MIN_PAUSE_MS = 80  # shorter quiet stretches are stop closures inside words
LONG_PAUSE_S = 1.0  # always cut at a pause this long (topic or speaker turn)


@dataclass(frozen=True)
class Pause:
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def center_s(self) -> float:
        return 0.5 * (self.start_s + self.end_s)


@dataclass
class Span:
    start_s: float  # with padding
    end_s: float
    flags: List[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def silero_speech_mask(samples16k: np.ndarray) -> np.ndarray:
    """Speech probability > 0.5 per 10 ms frame, from Silero VAD (its windows are 32 ms)."""
    probs = _silero_probabilities(samples16k)
    window_s = 512 / VAD_RATE_HZ
    n_frames = int(np.ceil(samples16k.shape[0] / (VAD_RATE_HZ * FRAME_MS / 1000)))
    frame_times = (np.arange(n_frames) + 0.5) * FRAME_MS / 1000
    index = np.minimum((frame_times / window_s).astype(int), max(probs.shape[0] - 1, 0))
    return probs[index] > 0.5 if probs.size else np.zeros(n_frames, bool)


_silero_lock = threading.Lock()
_silero_model: list = []


def _silero_probabilities(samples16k: np.ndarray) -> np.ndarray:
    import torch

    # The model carries its recurrent state from chunk to chunk in the object: one caller at a time.
    with _silero_lock:
        if not _silero_model:
            # Importing silero_vad sets torch's process-wide thread count to 1 (module-level code):
            # every thread started later, a server's requests included, would run on one core.
            with process_threads():
                from silero_vad import load_silero_vad

                _silero_model.append(load_silero_vad())
        model = _silero_model[0]
        model.reset_states()
        # One intra-op thread: the model runs one 32 ms window at a time, tiny operations for which a
        # second thread only adds its start and wait (10 minutes of audio: ~8x the CPU time on 2 cores).
        with torch.no_grad(), torch_threads(1):
            return model.audio_forward(torch.from_numpy(np.ascontiguousarray(samples16k, np.float32)),
                                       VAD_RATE_HZ).numpy().ravel()


def quiet_mask(samples16k: np.ndarray) -> np.ndarray:
    """Frames at least 30 dB under the loud speech level, or within 6 dB of the noise floor."""
    levels = frame_rms_db(samples16k, VAD_RATE_HZ, FRAME_MS)
    loud = float(np.percentile(levels, 95))
    floor = float(np.percentile(levels, 5))
    return levels < max(loud - 30.0, floor + 6.0)


def pause_mask(samples16k: np.ndarray) -> np.ndarray:
    """Frames that belong to a pause: quiet by energy, or marked non-speech by Silero while
    clearly (15 dB) below the loudest speech within half a second. The level condition keeps
    Silero's occasional dips inside loud words from becoming cut points."""
    from scipy.ndimage import maximum_filter1d

    levels = frame_rms_db(samples16k, VAD_RATE_HZ, FRAME_MS)
    local_peak = maximum_filter1d(levels, size=int(1000 / FRAME_MS) + 1, mode="nearest")
    not_speech = ~silero_speech_mask(samples16k)[: levels.shape[0]]
    return quiet_mask(samples16k) | (not_speech & (levels < local_peak - 15.0))


def find_pauses(silent: np.ndarray, min_pause_ms: float = MIN_PAUSE_MS) -> List[Pause]:
    """Runs of silent frames at least `min_pause_ms` long."""
    pauses, frame_s = [], FRAME_MS / 1000
    padded = np.concatenate([[False], silent, [False]]).astype(np.int8)
    edges = np.diff(padded)
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        if (end - start) * frame_s * 1000 >= min_pause_ms:
            pauses.append(Pause(start * frame_s, end * frame_s))
    return pauses


def speech_bounds(silent: np.ndarray) -> Optional[tuple[float, float]]:
    active = np.flatnonzero(~silent)
    if active.size == 0:
        return None
    return active[0] * FRAME_MS / 1000, (active[-1] + 1) * FRAME_MS / 1000


def plan_segments(samples16k: np.ndarray, min_s: float = 2.0, max_s: float = 12.0,
                  pad_s: float = 0.15) -> List[Span]:
    """Cut points for one recording, as padded spans in seconds."""
    if samples16k.size == 0:
        return []
    silent = pause_mask(samples16k)
    bounds = speech_bounds(silent)
    if bounds is None:
        return []
    levels = frame_rms_db(samples16k, VAD_RATE_HZ, FRAME_MS)
    pauses = [p for p in find_pauses(silent) if bounds[0] < p.center_s < bounds[1]]
    # (speech start, speech end, forced?) for each piece between chosen cuts
    pieces: List[tuple[float, float, bool]] = []
    start, end_of_speech = bounds
    while start < end_of_speech - 1e-6:
        if end_of_speech - start <= max_s and not any(
                p.duration_s >= LONG_PAUSE_S and p.start_s > start for p in pauses):
            pieces.append((start, end_of_speech, False))
            break
        in_range = [p for p in pauses if start + min_s <= p.center_s <= start + max_s]
        long_ones = [p for p in pauses if p.duration_s >= LONG_PAUSE_S and start < p.start_s < start + max_s]
        if long_ones:  # a long silence always separates segments, even short ones
            cut = long_ones[0]
        elif in_range:
            cut = max(in_range, key=lambda p: (round(p.duration_s, 2), p.center_s))
        else:
            cut = None
        if cut is None:
            # Continuous speech: the quietest 10 ms frame in range (smoothed over 50 ms).
            lo, hi = int((start + min_s) * 100), int(min(start + max_s, end_of_speech) * 100)
            smooth = np.convolve(levels, np.ones(5) / 5, mode="same")
            frame = lo + int(np.argmin(smooth[lo:hi])) if hi > lo else hi
            pieces.append((start, frame / 100, True))
            start = frame / 100
            continue
        pieces.append((start, cut.start_s, False))
        start = cut.end_s
        pauses = [p for p in pauses if p.start_s > cut.start_s]
    return _pad_and_merge(pieces, samples16k.shape[0] / VAD_RATE_HZ, min_s, max_s, pad_s)


def _pad_and_merge(pieces, total_s: float, min_s: float, max_s: float, pad_s: float) -> List[Span]:
    # A piece shorter than min joins a neighbour when the result still fits.
    merged: List[list] = []
    for start, end, forced in pieces:
        if merged and (end - start < min_s or merged[-1][1] - merged[-1][0] < min_s) \
                and end - merged[-1][0] <= max_s and start - merged[-1][1] < LONG_PAUSE_S:
            merged[-1][1], merged[-1][2] = end, merged[-1][2] or forced
        else:
            merged.append([start, end, forced])
    spans = []
    for i, (start, end, forced) in enumerate(merged):
        # Padding never reaches past half of the gap to the neighbouring segment.
        left_gap = start - merged[i - 1][1] if i else start
        right_gap = merged[i + 1][0] - end if i + 1 < len(merged) else total_s - end
        span = Span(max(0.0, start - min(pad_s, left_gap / 2)), min(total_s, end + min(pad_s, right_gap / 2)))
        if forced:
            span.flags.append("forced cut (no pause found)")
        if span.duration_s < min_s:
            span.flags.append("too short")
        if span.duration_s > max_s + 2 * pad_s:
            span.flags.append("too long")
        spans.append(span)
    return spans
