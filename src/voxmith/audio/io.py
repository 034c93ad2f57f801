"""Reading and writing audio files.

`load_audio` reads WAV (any integer or float subtype, any rate, any channel count), FLAC and OGG
through libsndfile, MP3 through PyAV (FFmpeg's libraries in the `av` wheel: libsndfile's MP3 decoder
prints to the terminal), and everything else (M4A/AAC, Opus, WMA, video containers...) through
ffmpeg when it is installed, else through PyAV. Every failure becomes an `AudioError` naming the
file and the problem; a file no decoder can read gets the one message of `undecodable`, whichever
command read it. A file longer than `load_audio`'s `max_seconds` is refused from its header before
any decoding where that length is exact, else from its packets counted without decoding them (or,
where nothing tells the length, as soon as the decoded audio passes the bound): a small compressed
file can hold hours of silence. `save_audio` writes atomically;
MP3, Opus and AAC are encoded by `voxmith.audio.encode`.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import soundfile as sf

from voxmith.audio.dsp import resample, to_mono
from voxmith.errors import AudioError
from voxmith.fsutil import atomic_path

# Read without ffmpeg (libsndfile >= 1.1 decodes MP3).
SUPPORTED_NATIVE_FORMATS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".aiff", ".aif")
# Common formats that only ffmpeg decodes here.
FFMPEG_FORMATS = (".m4a", ".aac", ".mp4", ".opus", ".wma", ".webm", ".mkv", ".mov", ".amr", ".3gp")
AUDIO_EXTENSIONS = SUPPORTED_NATIVE_FORMATS + FFMPEG_FORMATS
# Written through PyAV (voxmith.audio.encode, mono); the rest through libsndfile.
ENCODED_EXTENSIONS = (".mp3", ".opus", ".aac")
WRITABLE_EXTENSIONS = (".wav", ".flac", ".ogg") + ENCODED_EXTENSIONS
# libsndfile's format names -> the extension voxmith reads that format under.
FORMAT_EXTENSIONS = {"WAV": ".wav", "WAVEX": ".wav", "FLAC": ".flac", "MP3": ".mp3", "MPEG": ".mp3",
                     "OGG": ".ogg", "AIFF": ".aiff"}

# The longest audio `load_audio` decodes by default. It holds the whole file as float32 (and, for
# stereo, a mono copy; a resampled one when asked): an hour of 48 kHz is 0.7 GB per channel. Three
# hours (2 GB mono, 6 GB at the peak of a stereo downmix) still takes the long recordings datasets
# are built from (an interview, an audiobook chapter) on an 8-16 GB machine, and refuses the
# compressed "bombs" (a 10 MB FLAC of 20 hours of silence) that would take the web UI or the HTTP
# server down.
MAX_AUDIO_SECONDS = 3 * 3600.0
# The bound is in seconds up to 48 kHz stereo; above that (a 192 kHz or 8-channel header) it shrinks
# in proportion, so that no file gets more samples than three hours of 48 kHz stereo.
MAX_SAMPLES_PER_SECOND = 48000 * 2
LOWEST_COUNTED_RATE_HZ = 8000
# libsndfile's length for a file whose header does not say (SF_COUNT_MAX: a FLAC written to a pipe).
UNKNOWN_FRAMES = 2 ** 62
# libsndfile's names for MPEG audio, whose length it takes from libmpg123: estimated from the first
# frame's size without a Xing/Info header, and the first part's alone in parts joined with `cat`.
MPEG_FORMATS = ("MP3", "MPEG")
NATIVE_BLOCK_FRAMES = 2 ** 20  # a file of unknown length is read in blocks of this many frames
# FFmpeg's demuxers whose header length is exact when it is there: WAV/W64 (the data size), AIFF,
# FLAC (STREAMINFO), Ogg (the last page's granule), MP4/M4A (the track's sample tables), Matroska/WebM,
# ASF/WMA and CAF. Elsewhere FFmpeg estimates a length the header lacks from the first frames' bitrate:
# an MP3 without a Xing/Info header or joined with `cat` (it then ignores the first part's header), raw
# ADTS AAC, AC-3, AMR: episodes joined with `cat`, a quiet intro at a low bitrate first, read many
# times their length.
EXACT_LENGTH_FORMATS = frozenset({"wav", "w64", "aiff", "flac", "ogg", "mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm",
                                  "asf", "caf"})
# How to cut a long recording into parts, for the advice of every refusal of one.
SPLIT_EXAMPLE = "`ffmpeg -i FILE -f segment -segment_time 3600 part%03d.flac`"
TOO_LONG_ADVICE = (f"voxmith decodes a whole file into memory: split the recording into parts (e.g. {SPLIT_EXAMPLE}) "
                   "and give the parts instead.")


def _clock(seconds: float) -> str:
    """'3 h 00 min', '31 min 10 s', '45 s'."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    return f"{secs} s"


class TooLongError(AudioError):
    """A file longer than `load_audio` decodes: final, never a cue to try another decoder."""


@dataclass(frozen=True)
class LengthLimit:
    """How long a file `load_audio` decodes may be, and what to tell the user of a longer one."""

    max_seconds: float
    advice: str = TOO_LONG_ADVICE

    def allowed_frames(self, rate_hz: int, channels: int) -> int:
        # A rate below speech rates (a 1 Hz header) is a damaged header that `check_sample_rate` names;
        # what memory holds is its frames, counted as if at 8 kHz, not its hours.
        samples_per_s = min(max(LOWEST_COUNTED_RATE_HZ, rate_hz) * max(1, channels), MAX_SAMPLES_PER_SECOND)
        return int(self.max_seconds * samples_per_s / max(1, channels))

    def allowed_seconds(self, rate_hz: int, channels: int) -> float:
        return self.allowed_frames(rate_hz, channels) / max(1, rate_hz)

    def check(self, path: Path, frames: Optional[float], rate_hz: int, channels: int) -> None:
        """Refuse a file whose (declared, counted or decoded) length passes the bound; `frames` is
        infinite where counting stopped at the bound."""
        if frames is not None and frames > self.allowed_frames(rate_hz, channels):
            raise self.refusal(path, frames if math.isfinite(frames) else None, rate_hz, channels)

    def refusal(self, path: Path, frames: Optional[float], rate_hz: int, channels: int) -> TooLongError:
        """`frames`: the file's length, None when decoding stopped at the bound (the rest unknown)."""
        rate_hz = max(1, rate_hz)
        allowed_s = min(self.allowed_frames(rate_hz, channels) / rate_hz, self.max_seconds)
        at = f" at {rate_hz} Hz with {channels} channels" if allowed_s < self.max_seconds - 0.5 else ""
        limit = f"the {_clock(allowed_s)} limit{at}"
        length = f"{_clock(frames / rate_hz)} long, over {limit}" if frames is not None else f"longer than {limit}"
        return TooLongError(f"Cannot read '{path}': it is {length}. {self.advice}")


@dataclass(frozen=True)
class Audio:
    """Decoded audio: float32 samples in [-1, 1], shape (frames,) for mono or (frames, channels)."""

    samples: np.ndarray
    sample_rate_hz: int
    source: Optional[str] = None
    # What the file on disk was, before any downmix or resampling.
    source_info: dict = field(default_factory=dict)

    @property
    def channels(self) -> int:
        return 1 if self.samples.ndim == 1 else self.samples.shape[1]

    @property
    def frames(self) -> int:
        return self.samples.shape[0]

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate_hz

    @property
    def label(self) -> str:
        return Path(self.source).name if self.source else "audio"


def _ffmpeg_missing_message(path: Path) -> str:
    return (
        f"Cannot read '{path}': {path.suffix or 'this'} files need ffmpeg, which is not installed. "
        "Install ffmpeg (Debian/Ubuntu: 'sudo apt install ffmpeg', macOS: 'brew install ffmpeg', "
        "Windows: 'winget install ffmpeg') or convert the clip to WAV or FLAC."
    )


# The advice for a file FFmpeg's libraries could not decode where the ffmpeg program is never tried
# (MP3s, convert's streamed reader): installing ffmpeg would change nothing.
CONVERT_HINT = "convert it to WAV or FLAC"


def undecodable(path: Path, err: Exception | str, *, hint: Optional[str] = None,
                part_way: bool = False) -> AudioError:
    """The one error for a file no decoder could read, whichever read it (libsndfile, PyAV, the ffmpeg
    program; `load_audio` for `voices add`, `read_blocks` for `convert`): FFmpeg's own words (PyAV's
    `strerror`), not PyAV's "[Errno 1094995529] ...: 'path'" text nor ffmpeg's "path: ..." prefix.
    `hint`: what to do if it plays elsewhere (default: install ffmpeg, which the caller would then try,
    or convert it); `part_way`: it failed after some of it was read."""
    reason = getattr(err, "strerror", None) or str(err)
    reason = reason.removeprefix(f"{path}: ").removeprefix(f"{path.name}: ")
    if hint is None:
        hint = CONVERT_HINT if shutil.which("ffmpeg") else \
            "install ffmpeg (voxmith then uses it) or convert it to WAV or FLAC"
    what = "decoding failed part-way" if part_way else "it could not be decoded"
    return AudioError(f"Cannot read '{path}': {what} ({reason}). The file may be corrupt or "
                      f"not contain audio; if it plays elsewhere, {hint}.")


def _sniffs_as_mpeg(path: Path) -> bool:
    """An MP3 by name; under a name libsndfile does not know ('memo.bin'), by its first bytes (an ID3
    tag or an MPEG audio frame's sync word). A WAV, FLAC or AIFF may carry an ID3 tag in front too,
    which libsndfile reads past: those are never sniffed. Raises OSError for an unreadable file."""
    suffix = path.suffix.lower()
    if suffix == ".mp3":
        return True
    if suffix in SUPPORTED_NATIVE_FORMATS:
        return False
    with open(path, "rb") as file:
        head = file.read(3)
    return head == b"ID3" or len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0


def header_duration_s(path: str | os.PathLike) -> Optional[float]:
    """The file's length without decoding it: as libsndfile reads it from the header of a WAV, FLAC,
    Ogg or AIFF, else as `container_duration_s` tells it (None when neither can, or it is unreadable).
    MP3s are read by FFmpeg's libraries: libsndfile's length of one is libmpg123's estimate, and its
    reader prints libmpg123's notes about a damaged file ("Xing stream size off ...") to the terminal."""
    path = Path(path)
    try:
        if not _sniffs_as_mpeg(path):
            try:
                info = sf.info(str(path))
            except Exception:  # a format libsndfile does not read (M4A, WebM): FFmpeg's libraries may
                info = None
            if info is not None and 0 < info.frames < UNKNOWN_FRAMES and info.format not in MPEG_FORMATS:
                return float(info.duration)
        return container_duration_s(path)
    except Exception:  # a damaged file: the caller decodes it
        return None


def container_duration_s(path: str | os.PathLike) -> Optional[float]:
    """The audio's length as FFmpeg's libraries tell it without decoding it (`declared_seconds`, else
    `counted_seconds`; None when neither can); raises what PyAV raises for a file it cannot open."""
    import av

    with av.open(str(path)) as container:
        seconds = declared_seconds(container)
        return seconds if seconds is not None else counted_seconds(container)


def declared_seconds(container) -> Optional[float]:
    """An open PyAV container's length as its header declares it: its audio stream's, else the
    container's. None when neither says, and where the format's length may be FFmpeg's estimate
    (outside `EXACT_LENGTH_FORMATS`)."""
    if container.format.name not in EXACT_LENGTH_FORMATS:
        return None
    seconds = _stream_seconds(container.streams.audio[0])
    if seconds is None and container.duration is not None:
        seconds = container.duration / 1_000_000
    return seconds


def counted_seconds(container, stop_after_s: float = math.inf) -> Optional[float]:
    """The length of an open PyAV container's audio stream, counted from its packets' durations
    without decoding them (a packet that does not say is decoded), less the encoder's delay and
    padding that decoding trims: it reads the whole file, at a small part of decoding's cost.
    Infinity once the count passes `stop_after_s`; None where the file fails part-way (decoding then
    meets the failure, and the decoders' own bound applies). Consumes the container: decode from
    another."""
    stream = container.streams.audio[0]
    rate_hz = stream.codec_context.sample_rate or 0
    seconds = 0.0
    try:
        for packet in container.demux(stream):
            if packet.duration and packet.time_base is not None:
                seconds += float(packet.duration * packet.time_base)
            elif packet.size:
                seconds += sum(frame.samples / frame.sample_rate for frame in packet.decode() if frame.sample_rate)
            if rate_hz:
                seconds -= _trimmed_samples(packet) / rate_hz
            if seconds > stop_after_s:
                return math.inf
    except Exception:  # FFmpeg reports through many exception types
        return None
    return seconds


def _trimmed_samples(packet) -> int:
    """The samples the decoder drops from the packet: FFmpeg's skip-samples side data (a u32 at the
    start, a u32 at the end, little-endian), the encoder delay and padding of an MP3's LAME header or
    an M4A's. PyAV before 14 does not show side data: nothing is trimmed there."""
    has_sidedata = getattr(packet, "has_sidedata", None)
    if has_sidedata is None or not has_sidedata("skip_samples"):
        return 0
    data = bytes(packet.get_sidedata("skip_samples"))
    return int.from_bytes(data[0:4], "little") + int.from_bytes(data[4:8], "little")


def audio_seconds(path: Path, container, stop_after_s: float = math.inf) -> Optional[float]:
    """The length of `container` (open on `path`, left unread) where its header's is exact, else
    counted (`counted_seconds`) from a second opening of `path`: so a recording over a bound is
    refused before any decoding, whatever its container (infinity: past `stop_after_s`)."""
    seconds = declared_seconds(container)
    if seconds is not None:
        return seconds
    import av

    try:
        with av.open(str(path)) as again:
            return counted_seconds(again, stop_after_s)
    except Exception:  # it opened a moment ago: the decoder meets whatever this is
        return None


def _decode_with_pyav(path: Path, limit: LengthLimit,
                      hint: Optional[str] = None) -> Optional[tuple[np.ndarray, int, str]]:
    """Decode with PyAV's bundled FFmpeg libraries: samples, rate and the container's format name as
    FFmpeg tells it by content ("MP3", "FLAC"...; None when PyAV is missing). Refuses a file longer
    than `limit` by its header, or, when the header does not say, once the decoded audio passes it."""
    try:
        import av
    except ImportError:
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioError(f"Cannot read '{path}': it contains no audio stream.")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            channels = stream.codec_context.channels or 1
            seconds = audio_seconds(path, container, limit.allowed_seconds(rate, channels))
            if seconds is not None:
                limit.check(path, seconds * rate, rate, channels)
            allowed = limit.allowed_frames(rate, channels)
            resampler = av.AudioResampler(format="flt", layout=stream.layout.name if stream.layout else None)
            frames, decoded = [], 0
            for frame in container.decode(stream):
                for converted in resampler.resample(frame):
                    frames.append(converted.to_ndarray())
                    decoded += converted.samples
                if decoded > allowed:  # the header did not say (or understated) how long it is
                    raise limit.refusal(path, None, rate, channels)
            frames += [f.to_ndarray() for f in resampler.resample(None)]
            container_format = container.format.name.split(",")[0].upper()
    except AudioError:
        raise
    except Exception as err:  # FFmpeg reports through many exception types
        raise undecodable(path, err, hint=hint) from err
    if not frames:
        return np.zeros((0, 1), np.float32), rate, container_format
    # packed flt: (1, n*ch) per frame
    return np.concatenate(frames, axis=1).T.astype(np.float32), rate, container_format


def _stream_seconds(stream) -> Optional[float]:
    """A PyAV audio stream's length as its header declares it (None when it does not)."""
    if stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _check_container_length(path: Path, limit: LengthLimit) -> None:
    """Refuse a file FFmpeg's libraries tell (`audio_seconds`) is longer than `limit` (nothing when
    PyAV is missing, cannot open it or cannot tell: the decoders' own guards bound those)."""
    try:
        import av

        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels or 1
            seconds = audio_seconds(path, container, limit.allowed_seconds(rate, channels)) if rate else None
    except Exception:  # no PyAV, no audio stream, a file only the ffmpeg program reads
        return
    if seconds is not None and rate:
        limit.check(path, seconds * rate, rate, channels)


def _decode_with_ffmpeg(path: Path, limit: LengthLimit) -> tuple[np.ndarray, int]:
    """Decode through ffmpeg into a temporary float WAV and read that back (PyAV without ffmpeg)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        decoded = _decode_with_pyav(path, limit)
        if decoded is None:
            raise AudioError(_ffmpeg_missing_message(path))
        return decoded[0], decoded[1]
    _check_container_length(path, limit)
    with tempfile.TemporaryDirectory(prefix="voxmith-ffmpeg-") as tmp:
        out = Path(tmp) / "decoded.wav"
        # Where the header did not tell the length, ffmpeg stops a second past the bound in time
        # (-t) and in bytes (-fs, for many channels or a high rate), so the temporary WAV stays bounded.
        max_bytes = int((limit.max_seconds + 1) * MAX_SAMPLES_PER_SECOND * 4) + 65536
        cmd = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", str(path), "-vn", "-t", f"{limit.max_seconds + 1:g}",
               "-fs", str(max_bytes), "-acodec", "pcm_f32le", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            detail = (proc.stderr or "").strip().splitlines()
            raise undecodable(path, detail[-1] if detail else f"ffmpeg exited with code {proc.returncode}")
        info = sf.info(str(out))
        if info.frames > limit.allowed_frames(info.samplerate, info.channels):
            raise limit.refusal(path, None, info.samplerate, info.channels)
        samples, rate = sf.read(out, dtype="float32", always_2d=True)
    return samples, rate


def _unopenable(path: Path, err: OSError) -> AudioError:
    return AudioError(f"Cannot read '{path}': {err.strerror or err}. Check the file's permissions.")


def _read_native(path: Path, info, limit: LengthLimit) -> np.ndarray:
    """Decode through libsndfile: a file whose header gives its length is refused before decoding
    when that passes `limit` (libsndfile never reads past the length it gives); one that does not
    say (a FLAC written to a pipe), or an MP3 (whose length libsndfile estimates), is read in
    blocks, refused once the blocks pass it."""
    rate, channels = info.samplerate, info.channels
    known = 0 < info.frames < UNKNOWN_FRAMES and info.format not in MPEG_FORMATS
    if known:
        limit.check(path, info.frames, rate, channels)
    allowed = limit.allowed_frames(rate, channels)
    with sf.SoundFile(str(path)) as file:
        if known:
            return file.read(dtype="float32", always_2d=True)
        blocks, decoded = [], 0
        while True:
            block = file.read(NATIVE_BLOCK_FRAMES, dtype="float32", always_2d=True)
            if not len(block):
                break
            blocks.append(block)
            decoded += len(block)
            if decoded > allowed:
                raise limit.refusal(path, None, rate, channels)
    return np.concatenate(blocks) if blocks else np.zeros((0, channels), np.float32)


# A header that says "no audio" on a file larger than this is a recording whose header was never
# finished (a recorder stopped by a crash or a pulled cable leaves the data size at 0).
UNFINISHED_HEADER_MIN_BYTES = 4096


def _read_past_an_unfinished_header(path: Path, limit: LengthLimit) -> Optional[tuple[np.ndarray, int]]:
    """The audio after a header that claims none, as FFmpeg reads it (to the end of the file); None
    when FFmpeg finds none either."""
    try:
        samples, rate, _ = _decode_with_pyav(path, limit)
    except TooLongError:
        raise
    except AudioError:
        return None
    return (samples, rate) if samples.shape[0] else None


def _read_file(path: Path, limit: LengthLimit) -> tuple[np.ndarray, int, dict]:
    suffix = path.suffix.lower()
    if suffix in FFMPEG_FORMATS:
        samples, rate = _decode_with_ffmpeg(path, limit)
        return samples, rate, {"format": suffix.lstrip(".").upper(), "subtype": "ffmpeg"}
    try:
        mpeg = _sniffs_as_mpeg(path)
    except OSError as err:
        raise _unopenable(path, err) from err
    if mpeg:
        # libsndfile decodes MP3 through libmpg123, which prints its complaints about a damaged file
        # ("Giving up searching valid MPEG header", "Xing stream size off ...") straight to the
        # terminal, around our own error. FFmpeg's decoder (PyAV, its logging off) is silent, and gives
        # the same frames (samples within 3e-6 on the shared voices' MP3s). A file sniffed by its first
        # bytes that FFmpeg cannot decode may still be one libsndfile reads: it gets its turn below.
        try:  # the ffmpeg program is not tried for an MP3: installing it would not help
            decoded = _decode_with_pyav(path, limit, hint=CONVERT_HINT)
        except TooLongError:
            raise
        except AudioError:
            if suffix == ".mp3":
                raise
            decoded = None
        if decoded is not None:
            subtype = "MPEG_LAYER_III" if decoded[2] == "MP3" else "pyav"
            return decoded[0], decoded[1], {"format": decoded[2], "subtype": subtype}
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        native_error = str(err)
    else:
        try:
            samples = _read_native(path, info, limit)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
            native_error = str(err)
        else:
            if samples.shape[0] == 0 and path.stat().st_size > UNFINISHED_HEADER_MIN_BYTES:
                rescued = _read_past_an_unfinished_header(path, limit)
                if rescued is not None:
                    return rescued[0], rescued[1], {"format": info.format, "subtype": "pyav"}
            return samples, info.samplerate, {"format": info.format, "subtype": info.subtype}
    # libsndfile refused it. ffmpeg can rescue odd-but-valid files; without it, FFmpeg's libraries.
    if shutil.which("ffmpeg"):
        samples, rate = _decode_with_ffmpeg(path, limit)
        return samples, rate, {"format": suffix.lstrip(".").upper(), "subtype": "ffmpeg"}
    try:  # perhaps a known format under an odd name ('memo.bin'): FFmpeg's libraries tell by content
        decoded = _decode_with_pyav(path, limit)
    except TooLongError:
        raise
    except AudioError as err:
        if suffix in SUPPORTED_NATIVE_FORMATS:
            raise err from None
        decoded = None
    if decoded is not None:
        return decoded[0], decoded[1], {"format": "FFMPEG", "subtype": "pyav"}
    if suffix in SUPPORTED_NATIVE_FORMATS:
        raise undecodable(path, native_error)
    known = ", ".join(e.lstrip(".").upper() for e in SUPPORTED_NATIVE_FORMATS[:4])
    raise AudioError(
        f"Cannot read '{path}': unsupported or unrecognised format '{suffix or '(no extension)'}'. "
        f"voxmith reads {known} directly; other formats need ffmpeg, which is not installed."
    )


def load_audio(path: str | os.PathLike, *, sample_rate_hz: Optional[int] = None,
               mono: bool = True, max_seconds: Optional[float] = None,
               too_long_advice: str = TOO_LONG_ADVICE) -> Audio:
    """Read an audio file as float32, optionally downmixed to mono and resampled.

    Raises `AudioError` for a missing, empty, zero-length, corrupt or unsupported file, and for one
    longer than `max_seconds` (default `MAX_AUDIO_SECONDS`; less above 48 kHz stereo), whose message
    ends with `too_long_advice`.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"Cannot read '{path}': file not found.")
    if path.is_dir():
        raise AudioError(f"Cannot read '{path}': it is a folder, not an audio file.")
    if path.stat().st_size == 0:
        raise AudioError(f"Cannot read '{path}': the file is empty (0 bytes).")
    try:  # libsndfile and FFmpeg would call an unreadable file undecodable
        with open(path, "rb"):
            pass
    except OSError as err:
        raise _unopenable(path, err) from err
    limit = LengthLimit(MAX_AUDIO_SECONDS if max_seconds is None else max_seconds, too_long_advice)
    samples, rate, info = _read_file(path, limit)
    if samples.shape[0] == 0:
        raise AudioError(f"Cannot read '{path}': it contains no audio (zero length).")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"Cannot read '{path}': it contains invalid samples (NaN or infinity).")
    source_info = {**info, "sample_rate_hz": int(rate), "channels": int(samples.shape[1]),
                   "frames": int(samples.shape[0])}
    if samples.shape[1] == 1:  # a view, not two copies through an average of one channel
        samples = samples[:, 0]
    elif mono:
        samples = to_mono(samples)
    if sample_rate_hz is not None and sample_rate_hz != rate:
        samples = resample(samples, rate, sample_rate_hz)
        rate = sample_rate_hz
    return Audio(np.ascontiguousarray(samples, dtype=np.float32), int(rate), str(path), source_info)


def extension_for(path: str | os.PathLike, source_info: dict) -> Optional[str]:
    """The extension a copy of the clip at `path` needs for voxmith to read it back: its own when
    that is an audio extension, else the one of the format it decoded as (WAV data in 'take.txt'
    -> '.wav'); None when that format has no extension of its own here (store a decoded copy)."""
    suffix = Path(path).suffix.lower()
    if suffix in AUDIO_EXTENSIONS:
        return suffix
    return FORMAT_EXTENSIONS.get(str(source_info.get("format", "")).upper())


def save_audio(path: str | os.PathLike, samples: np.ndarray, sample_rate_hz: int,
               subtype: Optional[str] = None) -> Path:
    """Write audio atomically; the format follows the extension (WAV 16-bit by default)."""
    path = Path(path)
    samples = np.asarray(samples, dtype=np.float32)
    if path.suffix.lower() in ENCODED_EXTENSIONS:
        from voxmith.audio.encode import encode_audio

        data = encode_audio(samples if samples.ndim == 1 else samples.mean(axis=1), sample_rate_hz,
                            path.suffix.lower().lstrip("."))
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(data)
        return path
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower())
    if fmt is None:
        raise AudioError(f"Cannot write '{path}': use a {', '.join(WRITABLE_EXTENSIONS)} file name.")
    if subtype is None:
        subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    if not subtype.startswith("FLOAT") and not subtype.startswith("DOUBLE"):
        # libsndfile wraps around instead of clipping when converting float to int.
        samples = np.clip(samples, -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), samples, sample_rate_hz, subtype=subtype, format=fmt)
    return path
