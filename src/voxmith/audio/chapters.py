"""An audiobook file with chapter markers, written as it goes: M4B (AAC in MP4) through PyAV, whose
FFmpeg libraries write the chapter list (no ffmpeg program needed). Players show the chapters."""

from __future__ import annotations

import fractions
import os
from typing import Iterable, Sequence, Tuple

import numpy as np

from voxmith.audio.io import AudioError
from voxmith.fsutil import atomic_path


def write_m4b(path: str | os.PathLike, chunks: Iterable[np.ndarray], sample_rate_hz: int,
              chapters: Sequence[Tuple[str, float, float]], title: str = "") -> None:
    """Encode mono float32 `chunks` (in order) into `path` with `chapters` as (title, start_s, end_s);
    atomic: the file appears only when complete."""
    import av

    base = fractions.Fraction(1, 1000)
    with atomic_path(path, suffix=".m4b") as tmp:
        try:
            container = av.open(str(tmp), "w", format="ipod")
            stream = container.add_stream("aac", rate=sample_rate_hz, layout="mono")
            stream.bit_rate = 64_000
            if title:
                container.metadata["title"] = title
            container.set_chapters([{"id": k + 1, "start": int(round(start * 1000)), "end": int(round(end * 1000)),
                                     "time_base": base, "metadata": {"title": name}}
                                    for k, (name, start, end) in enumerate(chapters)])
            resampler = av.AudioResampler(format=stream.codec_context.codec.audio_formats[0].name, layout="mono",
                                          rate=sample_rate_hz, frame_size=stream.codec_context.frame_size or 1024)
            pts = 0
            for chunk in chunks:
                chunk = np.clip(np.asarray(chunk, np.float32).reshape(1, -1), -1.0, 1.0)
                if not chunk.size:
                    continue
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate, frame.pts = sample_rate_hz, pts
                pts += chunk.shape[1]
                for resampled in resampler.resample(frame):
                    for packet in stream.encode(resampled):
                        container.mux(packet)
            for resampled in resampler.resample(None):
                for packet in stream.encode(resampled):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
            container.close()
        except AudioError:
            raise
        except Exception as err:  # FFmpeg reports through many exception types
            raise AudioError(f"Cannot write the audiobook '{path}': {err}") from err


def cue_sheet(audio_file: str, chapters: Sequence[Tuple[str, float, float]]) -> str:
    """A CUE sheet naming each chapter's start in `audio_file` (for players without M4B support)."""
    lines = [f'FILE "{audio_file}" WAVE']
    for k, (name, start, _) in enumerate(chapters, 1):
        minutes, seconds = divmod(start, 60)
        frames = int(round((seconds - int(seconds)) * 75))
        lines += [f"  TRACK {k:02d} AUDIO", f'    TITLE "{name.replace(chr(34), chr(39))}"',
                  f"    INDEX 01 {int(minutes):02d}:{int(seconds):02d}:{min(frames, 74):02d}"]
    return "\n".join(lines) + "\n"
