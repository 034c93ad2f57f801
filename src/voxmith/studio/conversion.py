"""Converting a recording into a voice: any speaker's speech in, the same words in the voice out.

The recording is decoded and cut at pauses chunk by chunk (`voxmith.audio.stream`), so memory stays
bounded however long it is; its length is bounded as `load_audio`'s is (3 h), since a small file can
declare hours of audio and converting them would take hours. The engine's `Converter` is fitted on
the first `FIT_S` seconds (the source speaker's statistics) and then converts every chunk, which is
written as soon as it is done.
The sidecar records the input file's fingerprint, the voice, engine, settings and what the engine
chose for this recording, so `reproduce` can make the same file again (conversion is deterministic).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from voxmith.version import __version__
from voxmith.audio.io import SPLIT_EXAMPLE
from voxmith.audio.stream import StreamWriter, chunks_at_pauses, duration_s, read_blocks
from voxmith.engines import Engine
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_write_json, fingerprint_files
from voxmith.progress import ProgressCallback, report
from voxmith.studio.record import ConversionRecord, RefsSource, VoiceSource

# convert's progress counts seconds of the recording: "audio s", so that tqdm's rate reads
# "4.00audio s/s" (faster than real time) or "1.20s/audio s" (slower); with "s" both read "s/s".
AUDIO_SECONDS = "audio s"


FIT_S = 30.0  # seconds of the recording's start the converter is fitted on
CHECK_RATE_HZ = 16000  # the recording's first block is decoded at this rate to check it can be read
# For a recording over the bound: refused before the voice is enrolled (its length is read from its
# header, or counted from its packets, by `read_blocks`), else once the conversion passes the bound.
TOO_LONG_ADVICE = f"Split it into parts (e.g. {SPLIT_EXAMPLE}) and convert the parts one by one."


@dataclass
class ConvertRequest:
    source: str | Path  # the recording to convert
    voice: Optional[str] = None  # a voice in the library...
    refs: Sequence[str | Path] = ()  # ...or reference clips used directly
    engine: Optional[str] = None
    settings: Dict[str, object] = field(default_factory=dict)  # the engine's conversion settings
    output: Optional[Path] = None
    overwrite: bool = False
    origin: Dict[str, object] = field(default_factory=dict)  # recorded as is (e.g. the HTTP API)
    # Chunks are cut at the quietest point between these lengths (recorded: `reproduce` cuts alike).
    chunk_min_s: float = 8.0
    chunk_max_s: float = 20.0

    def validate(self) -> None:
        if not 1.0 <= self.chunk_min_s < self.chunk_max_s <= 120.0:
            raise VoxmithError("Chunks must be between 1 and 120 s long, the shortest below the longest.")
        if bool(self.voice) == bool(self.refs):
            raise VoxmithError("Say whose voice to convert into: --voice NAME or --ref CLIP... (one of them).")
        source = Path(self.source)
        if not source.is_file():
            raise VoxmithError(f"The recording to convert, '{source}', does not exist.")
        # A file no decoder reads, or one over the bound (by its header, or its packets counted), is
        # refused now, in `load_audio`'s words, not after the voice is enrolled.
        blocks = read_blocks(source, CHECK_RATE_HZ, too_long_advice=TOO_LONG_ADVICE)
        try:
            first = next(blocks, None)
        finally:
            blocks.close()
        if first is None or not first.size:  # a header and no samples (a recording stopped at once)
            raise VoxmithError(f"The recording to convert, '{source}', contains no audio (zero length): "
                               "record or export it again.")


@dataclass
class ConvertResult:
    path: Path
    sidecar_path: Path
    sample_rate_hz: int
    record: ConversionRecord

    @property
    def sidecar(self) -> dict:
        """The sidecar's JSON, as written."""
        return self.record.to_json()

    @property
    def duration_s(self) -> float:
        return self.record.duration_s


def convert_recording(engine: Engine, conditioning, request: ConvertRequest, output: Path, voice_record: dict,
                      device: str, progress: Optional[ProgressCallback] = None) -> ConvertResult:
    """Convert `request.source` into the conditioned voice, writing `output` and its sidecar."""
    started = time.perf_counter()
    source = Path(request.source).resolve()
    settings = engine.checked_convert_settings(request.settings)
    rate = engine.sample_rate_hz
    total_s = duration_s(source)
    chunks = chunks_at_pauses(read_blocks(source, rate, too_long_advice=TOO_LONG_ADVICE), rate,
                              request.chunk_min_s, request.chunk_max_s)
    head, head_frames = [], 0
    for chunk in chunks:  # the start of the recording, kept to be converted after fitting
        head.append(chunk)
        head_frames += chunk.size
        if head_frames >= FIT_S * rate:
            break
    if not head_frames:
        raise VoxmithError(f"'{source}' contains no audio.")
    converter = engine.converter(np.concatenate(head), conditioning, settings, progress)
    total = int(round(total_s)) if total_s else None
    done = 0
    with StreamWriter(output, rate) as writer:
        for chunk in itertools.chain(head, chunks):
            done_s = int(done / rate)
            report(progress, "converting (seconds of the recording)", min(done_s, total) if total else done_s, total,
                   unit=AUDIO_SECONDS)
            writer.write(converter.convert(chunk))
            done += chunk.size
    # Ends at the total it announced (a 9.6 s recording counted 0/10 ... then 9/9).
    final = total if total else int(round(done / rate))
    report(progress, "converting (seconds of the recording)", final, final, unit=AUDIO_SECONDS)
    elapsed = time.perf_counter() - started
    seconds = done / rate
    voice, refs = voice_record.get("voice"), voice_record.get("refs")
    record = ConversionRecord(
        input_file=str(source), input_fingerprint=fingerprint_files([source]), input_duration_s=round(seconds, 3),
        voice=VoiceSource(**voice) if voice else None, refs=RefsSource(**refs) if refs else None,
        engine_name=engine.name, engine_version=engine.version, settings=settings.to_dict(),
        conversion=dict(converter.details), chunk_min_s=request.chunk_min_s, chunk_max_s=request.chunk_max_s,
        fit_s=FIT_S, device=device, output_file=output.name, duration_s=round(seconds, 3), sample_rate_hz=rate,
        created=time.strftime("%Y-%m-%dT%H:%M:%S"), voxmith_version=__version__, total_s=round(elapsed, 3),
        real_time_factor=round(elapsed / max(seconds, 1e-6), 3), origin=dict(request.origin))
    sidecar_path = output.with_suffix(".json")
    atomic_write_json(sidecar_path, record.to_json())
    return ConvertResult(output, sidecar_path, rate, record)


def request_from_record(record: ConversionRecord, output: Optional[Path], overwrite: bool) -> ConvertRequest:
    """The request that made a conversion result; refuses when its input file changed or is gone."""
    source = Path(record.input_file)
    if not source.is_file():
        raise VoxmithError(f"The recording this result converted, '{source}', is gone; it cannot be reproduced.")
    if fingerprint_files([source]) != record.input_fingerprint:
        raise VoxmithError(f"The recording '{source}' has changed since this result was made, so it cannot be "
                           "reproduced exactly.")
    return ConvertRequest(source=source, voice=record.voice.name if record.voice else None,
                          refs=tuple(record.refs.files) if record.refs else (), engine=record.engine_name,
                          settings=dict(record.settings), output=output, overwrite=overwrite,
                          chunk_min_s=record.chunk_min_s, chunk_max_s=record.chunk_max_s)


__all__ = ["ConvertRequest", "ConvertResult", "convert_recording", "request_from_record"]
