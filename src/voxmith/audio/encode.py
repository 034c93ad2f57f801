"""Encoding audio in memory: mp3, opus, aac, flac, wav and raw pcm, whole or as a stream.

The compressed formats go through PyAV (FFmpeg's libraries inside the `av` wheel, installed with
faster-whisper), so no `ffmpeg` binary is needed. `StreamEncoder` turns chunks of float samples into
bytes that can be sent as they come (a WAV stream starts with a header of unknown length, as
HTTP speech servers do); `encode_audio` does a whole clip at once.

This module only turns samples into bytes; reading files is `voxmith.audio.io`'s job.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from voxmith.errors import AudioError


@dataclass(frozen=True)
class AudioFormat:
    name: str
    content_type: str
    extension: str
    container: Optional[str] = None  # PyAV muxer; None: written here (wav, pcm)
    codec: Optional[str] = None
    # Sample rates the codec accepts; others are resampled to the first one that is >= the input
    # rate (or the highest). Empty: any rate.
    rates: Tuple[int, ...] = ()
    bit_rate: Optional[int] = None


FORMATS: Dict[str, AudioFormat] = {f.name: f for f in (
    AudioFormat("mp3", "audio/mpeg", ".mp3", "mp3", "libmp3lame",
                (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), 64_000),
    # Opus only runs at these rates; 48 kHz keeps the full band of any engine.
    AudioFormat("opus", "audio/ogg", ".opus", "ogg", "libopus", (48000,), 48_000),
    AudioFormat("aac", "audio/aac", ".aac", "adts", "aac",
                (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000), 64_000),
    AudioFormat("flac", "audio/flac", ".flac", "flac", "flac"),
    AudioFormat("wav", "audio/wav", ".wav"),
    AudioFormat("pcm", "audio/pcm", ".pcm"),  # 16-bit little-endian mono, no header
)}

# A WAV header's size fields when the length is not known yet (a stream): readers take "to the end".
_UNKNOWN_SIZE = 0xFFFFFFFF


def audio_format(name: str) -> AudioFormat:
    fmt = FORMATS.get(name.lower().lstrip(".")) if name else None
    if fmt is None:
        raise AudioError(f"Unknown audio format '{name}'. Choose one of: {', '.join(FORMATS)}.")
    return fmt


def format_for_path(path) -> Optional[AudioFormat]:
    """The format a file name asks for by its extension (None when it is not one of ours)."""
    suffix = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else ""
    aliases = {"ogg": None, "m4a": None, "oga": None}  # containers we do not write through PyAV
    if suffix in aliases:
        return None
    return FORMATS.get(suffix)


def to_pcm16(samples: np.ndarray) -> bytes:
    """Float samples in [-1, 1] as 16-bit little-endian bytes (clipped, rounded)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    return np.round(clipped * 32767.0).astype("<i2").tobytes()


def wav_header(sample_rate_hz: int, frames: Optional[int] = None) -> bytes:
    """A 44-byte header of a 16-bit mono WAV; `frames=None` marks the length as unknown."""
    data_bytes = _UNKNOWN_SIZE if frames is None else 2 * frames
    riff_bytes = _UNKNOWN_SIZE if frames is None else 36 + data_bytes
    return (b"RIFF" + struct.pack("<I", riff_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate_hz, 2 * sample_rate_hz, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


class _Sink:
    """A write-only file for PyAV's muxer; `take()` returns what was written since the last call.
    Having no `seek`, it makes muxers write a streamable file (no header patched at the end)."""

    def __init__(self):
        self._parts: List[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


class StreamEncoder:
    """Encode mono float32 chunks of one stream into `fmt`: `encode(chunk)` returns the bytes ready
    so far (possibly none: codecs buffer a frame), `finish()` the rest. Concatenated, the pieces
    are one valid file (or raw pcm)."""

    def __init__(self, fmt: str | AudioFormat, sample_rate_hz: int, frames: Optional[int] = None):
        self.format = fmt if isinstance(fmt, AudioFormat) else audio_format(fmt)
        self.sample_rate_hz = int(sample_rate_hz)
        self._header_pending = self.format.name == "wav"
        self._frames = frames  # known total length: a WAV header with real sizes
        self._finished = False
        self._container = None
        if self.format.container:
            self._open_container()

    def _open_container(self) -> None:
        import av

        fmt = self.format
        rate = self.sample_rate_hz
        if fmt.rates and rate not in fmt.rates:
            rate = next((r for r in fmt.rates if r >= rate), fmt.rates[-1])
        self._sink = _Sink()
        try:
            # Ogg holds packets for up to a second before writing a page; a stream wants them now.
            options = {"page_duration": "100000"} if fmt.container == "ogg" else {}
            self._container = av.open(self._sink, mode="w", format=fmt.container, options=options)
            self._stream = self._container.add_stream(fmt.codec, rate=rate, layout="mono")
            if fmt.bit_rate:
                self._stream.bit_rate = fmt.bit_rate
            codec_format = self._stream.codec_context.codec.audio_formats[0].name
            self._container.start_encoding()
            # Frames must have the codec's size (mp3 1152, aac 1024, opus 960 samples); 0: any.
            frame_size = self._stream.codec_context.frame_size or None
        except Exception as err:  # FFmpeg reports through many exception types
            raise AudioError(f"Cannot encode {fmt.name}: {err}") from err
        self._resampler = av.AudioResampler(format=codec_format, layout="mono", rate=rate, frame_size=frame_size)
        self._input_pts = 0

    def _encode_frames(self, frame) -> None:
        for resampled in self._resampler.resample(frame):
            for packet in self._stream.encode(resampled):
                self._container.mux(packet)

    def encode(self, samples: np.ndarray) -> bytes:
        if self._finished:
            raise AudioError("This audio stream is already finished.")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if self._container is None:
            header = b""
            if self._header_pending:
                header, self._header_pending = wav_header(self.sample_rate_hz, self._frames), False
            return header + to_pcm16(samples)
        import av

        if samples.size:
            frame = av.AudioFrame.from_ndarray(np.clip(samples, -1.0, 1.0)[None, :], format="flt", layout="mono")
            frame.sample_rate = self.sample_rate_hz
            frame.pts = self._input_pts
            self._input_pts += samples.size
            self._encode_frames(frame)
        return self._sink.take()

    def finish(self) -> bytes:
        if self._finished:
            return b""
        if self._container is None:
            data = wav_header(self.sample_rate_hz, self._frames or 0) if self._header_pending else b""
            self._finished = True
            return data
        self._encode_frames(None)  # flush the resampler's buffered samples
        for packet in self._stream.encode(None):  # and the codec's
            self._container.mux(packet)
        self._container.close()
        self._finished = True
        return self._sink.take()


def encode_audio(samples: np.ndarray, sample_rate_hz: int, fmt: str | AudioFormat) -> bytes:
    """A whole clip as the bytes of a `fmt` file (a WAV header with the real length)."""
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    encoder = StreamEncoder(fmt, sample_rate_hz, frames=samples.shape[0])
    return encoder.encode(samples) + encoder.finish()
