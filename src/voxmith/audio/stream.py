"""Long recordings in bounded memory: decode in blocks, cut at pauses, write as it goes.

`read_blocks` decodes any file PyAV (FFmpeg's libraries) can read, downmixed to mono and resampled
to one rate with a streaming resampler (soxr), block by block, up to `load_audio`'s length bound
(memory stays bounded, but a small file can declare hours of audio, hours of work for its reader);
`chunks_at_pauses` regroups blocks into chunks cut in the quietest stretch within a length window,
so each chunk can be processed on its own without an audible seam; `StreamWriter` appends chunks to a file that appears, complete,
only when closed (atomic, like `save_audio`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import soundfile as sf
import soxr

from voxmith.audio.checks import MIN_SAMPLE_RATE_HZ, check_sample_rate
from voxmith.audio import io as audio_io
from voxmith.audio.io import (CONVERT_HINT, ENCODED_EXTENSIONS, SPLIT_EXAMPLE, WRITABLE_EXTENSIONS, AudioError,
                              LengthLimit, container_duration_s, undecodable)
from voxmith.fsutil import atomic_path

BLOCK_S = 2.0
TOO_LONG_ADVICE = f"Split the recording into parts (e.g. {SPLIT_EXAMPLE}) and give the parts one at a time."


def duration_s(path: str | os.PathLike) -> Optional[float]:
    """The recording's length without decoding it (`container_duration_s`; None when it cannot tell)."""
    try:
        return container_duration_s(path)
    except Exception:  # unreadable files are reported by read_blocks
        return None


def read_blocks(path: str | os.PathLike, sample_rate_hz: int, block_s: float = BLOCK_S, *,
                max_seconds: Optional[float] = None, too_long_advice: str = TOO_LONG_ADVICE) -> Iterator[np.ndarray]:
    """Mono float32 blocks of about `block_s` at `sample_rate_hz`; only a block or two in memory.

    A file longer than `max_seconds` (default: `load_audio`'s, `MAX_AUDIO_SECONDS`) is refused before
    any block is decoded, from its header where that is exact, else from its packets counted without
    decoding (`audio_seconds`), or, where neither tells, as soon as the blocks pass the bound; the
    message ends with `too_long_advice`. Only a block is held, so the bound is
    in seconds whatever the file's rate and channels (counted at `sample_rate_hz`, mono)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"Cannot read '{path}': file not found.")
    if path.stat().st_size == 0:
        raise AudioError(f"Cannot read '{path}': the file is empty (0 bytes).")
    try:
        container = av.open(str(path))
    except Exception as err:  # FFmpeg reports through many exception types
        raise undecodable(path, err, hint=CONVERT_HINT) from err  # only FFmpeg's libraries read it here
    with container:
        if not container.streams.audio:
            raise AudioError(f"Cannot read '{path}': it contains no audio stream.")
        stream = container.streams.audio[0]
        # A 1 Hz header would make each decoded frame millions of samples, and the recording hours long.
        check_sample_rate(stream.codec_context.sample_rate or MIN_SAMPLE_RATE_HZ, str(path))
        limit = LengthLimit(audio_io.MAX_AUDIO_SECONDS if max_seconds is None else max_seconds, too_long_advice)
        seconds = audio_io.audio_seconds(path, container, limit.allowed_seconds(sample_rate_hz, 1))
        if seconds is not None:
            limit.check(path, seconds * sample_rate_hz, sample_rate_hz, 1)
        allowed, emitted = limit.allowed_frames(sample_rate_hz, 1), 0
        # Planar float, channels averaged here as `load_audio` does (FFmpeg's own downmix is -3 dB
        # per channel); the rate change is soxr's, at the quality `load_audio` uses.
        to_float = av.AudioResampler(format="fltp")
        resampler: Optional[soxr.ResampleStream] = None
        pending, size = [], 0
        block = int(block_s * sample_rate_hz)
        try:
            for frame in container.decode(stream):
                for planar in to_float.resample(frame):
                    samples = planar.to_ndarray().mean(axis=0).astype(np.float32)
                    if resampler is None:
                        resampler = soxr.ResampleStream(planar.sample_rate, sample_rate_hz, 1, dtype="float32",
                                                        quality="VHQ")
                    out = resampler.resample_chunk(samples) if planar.sample_rate != sample_rate_hz else samples
                    pending.append(out)
                    size += out.size
                    emitted += out.size
                    if emitted > allowed:  # the header did not say (or understated) how long it is
                        raise limit.refusal(path, None, sample_rate_hz, 1)
                    if size >= block:
                        yield np.concatenate(pending)
                        pending, size = [], 0
        except AudioError:
            raise
        except Exception as err:  # FFmpeg's reason in words, as for a file that fails at once
            raise undecodable(path, err, hint=CONVERT_HINT, part_way=True) from err
        if resampler is not None and stream.codec_context.sample_rate != sample_rate_hz:
            pending.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        if pending:
            tail = np.concatenate(pending)
            if tail.size:
                yield tail


def chunks_at_pauses(blocks: Iterable[np.ndarray], sample_rate_hz: int, min_s: float = 8.0,
                     max_s: float = 20.0, window_ms: float = 50.0) -> Iterator[np.ndarray]:
    """Regroup `blocks` into chunks of `min_s`..`max_s` (the last may be shorter), each cut at the
    middle of the quietest `window_ms` between those lengths. In order, the chunks add up to the
    input exactly."""
    window = max(1, int(window_ms * sample_rate_hz / 1000))
    low, high = int(min_s * sample_rate_hz), int(max_s * sample_rate_hz)
    buffer = np.zeros(0, np.float32)
    for block in blocks:
        buffer = np.concatenate([buffer, np.asarray(block, np.float32).reshape(-1)])
        while buffer.size >= high:
            region = buffer[low:high]
            frames = region[: region.size // window * window].reshape(-1, window)
            quietest = int(np.argmin((frames ** 2).mean(axis=1)))
            cut = low + quietest * window + window // 2
            yield buffer[:cut]
            buffer = buffer[cut:]
    if buffer.size:
        yield buffer


class StreamWriter:
    """Append mono float32 chunks to an audio file (WAV/FLAC/OGG through libsndfile, MP3/Opus/AAC
    through PyAV); the file appears at `path` only when `close()` succeeds. Use as a context manager:
    an exception discards the partial file."""

    def __init__(self, path: str | os.PathLike, sample_rate_hz: int):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in WRITABLE_EXTENSIONS:
            raise AudioError(f"Cannot write '{self.path}': use a {', '.join(WRITABLE_EXTENSIONS)} file name.")
        self.sample_rate_hz = int(sample_rate_hz)
        self.frames = 0
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        if suffix in ENCODED_EXTENSIONS:
            from voxmith.audio.encode import StreamEncoder

            self._encoder, self._file = StreamEncoder(suffix.lstrip("."), self.sample_rate_hz), open(self._tmp, "wb")
        else:
            fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[suffix]
            subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
            self._encoder, self._file = None, sf.SoundFile(str(self._tmp), "w", self.sample_rate_hz, 1, subtype, format=fmt)

    def write(self, samples: np.ndarray) -> None:
        samples = np.clip(np.asarray(samples, np.float32).reshape(-1), -1.0, 1.0)
        self.frames += samples.size
        if self._encoder is not None:
            self._file.write(self._encoder.encode(samples))
        else:
            self._file.write(samples)

    def close(self) -> Path:
        if self._encoder is not None:
            self._file.write(self._encoder.finish())
        self._file.close()
        self._atomic.__exit__(None, None, None)
        return self.path

    def discard(self) -> None:
        self._file.close()
        try:
            raise RuntimeError("discarded")
        except RuntimeError as err:
            self._atomic.__exit__(RuntimeError, err, err.__traceback__)

    def __enter__(self) -> "StreamWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()
