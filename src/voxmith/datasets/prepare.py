"""`dataset prepare`: long recordings in, a transcribed LJSpeech dataset out, resumably.

1. Every source is decoded and checked, and the plan (where to cut) is computed; nothing is
   written until all sources are readable.
2. Segment audio is written (22.05 kHz mono, loudness-normalised) and recorded in segments.json,
   all of it or nothing (`staging`): a recording that cannot be read again, or is not the file it
   was when the run began, stops the run with the dataset as it was.
   Both steps decode one source at a time and let it go before the next: memory follows the
   longest recording, not all of them together.
3. Segments are transcribed one by one; segments.json and the lists are rewritten after each, so
   Ctrl-C leaves a consistent dataset and a re-run continues where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from voxmith.audio import Audio, load_audio, loudness_normalize, resample, save_audio
from voxmith.audio.checks import check_sample_rate
from voxmith.audio.analysis import CLIP_LEVEL
from voxmith.audio.duplicates import same_recordings
from voxmith.datasets.slicing import VAD_RATE_HZ, plan_segments
from voxmith.datasets.staging import replacing_segments, settle_interrupted
from voxmith.datasets.store import Dataset
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report
from voxmith.fsutil import fingerprint_files

LOW_LOGPROB = -1.0  # Whisper's average log-probability below this: shaky transcript
HIGH_NO_SPEECH = 0.6
# A segment less similar than this to the main speaker (GE2E cosine) is flagged: calibrated on the
# shared recordings, same- vs other-speaker segments (benchmarks/speaker_flag_calibration.py).
OTHER_SPEAKER_COSINE = 0.73


@dataclass(frozen=True)
class PrepareSettings:
    language: str = "en"  # a Whisper language code, or "auto"
    model: Optional[str] = None  # faster-whisper model name or folder; None: the bundled base model
    validation_ratio: float = 0.05
    min_seconds: float = 2.0
    max_seconds: float = 12.0
    pad_seconds: float = 0.15
    sample_rate_hz: int = 22050
    target_lufs: float = -20.0

    def validate(self) -> None:
        if not 0.5 <= self.min_seconds < self.max_seconds:
            raise VoxmithError("--min-seconds must be at least 0.5 and below --max-seconds.")
        if self.max_seconds > 30:
            raise VoxmithError("--max-seconds above 30 is longer than Whisper's window; use 30 or less.")
        if not 0 <= self.validation_ratio < 0.5:
            raise VoxmithError("--validation-ratio must be between 0 and 0.5.")
        if self.language != "auto":
            from faster_whisper.tokenizer import _LANGUAGE_CODES

            if self.language not in _LANGUAGE_CODES:
                raise VoxmithError(f"Unknown language code '{self.language}'. Use 'auto' or a Whisper code "
                                   f"such as en, de, fr, es, it, ja, zh ({len(_LANGUAGE_CODES)} in all).")
        if self.model:
            # Found (not loaded) now, before any slicing: a missing model must not leave a
            # half-built dataset behind.
            from voxmith.asr.whisper import resolve_model

            resolve_model(self.model)

    def slicing_key(self) -> dict:
        """The settings that decide the segments; resuming requires them unchanged."""
        return {k: getattr(self, k) for k in ("min_seconds", "max_seconds", "pad_seconds", "sample_rate_hz",
                                               "target_lufs")}


FileIdentity = Tuple[int, int]  # size (bytes) and modification time (ns): a file replaced or rewritten differs


def _file_identity(path: Path) -> Optional[FileIdentity]:
    """None when the file cannot be found or read any more."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True)
class SourcePlan:
    """One recording as the first decode saw it: where to cut it, and what the second decode (which
    writes the segments) must find again."""
    path: Path
    cuts: list  # slicing spans, in order
    duration_s: float
    frames: int
    sample_rate_hz: int


def _read_source(path: Path) -> Audio:
    audio = load_audio(path)
    check_sample_rate(audio.sample_rate_hz, str(path))  # 1 Hz: hours of 'audio', gigabytes at 16 kHz
    return audio


def _plan_source(path: Path, settings: PrepareSettings) -> SourcePlan:
    """One recording's cut plan; its audio is released on return."""
    audio = _read_source(path)
    cuts = plan_segments(resample(audio.samples, audio.sample_rate_hz, VAD_RATE_HZ),
                         settings.min_seconds, settings.max_seconds, settings.pad_seconds)
    return SourcePlan(path, cuts, audio.duration_s, len(audio.samples), audio.sample_rate_hz)


def _plan(paths: Sequence[Path], settings: PrepareSettings, progress) -> List[SourcePlan]:
    """Cut plans of every source; refuses unreadable recordings, and recordings with no usable
    speech, before writing anything. One recording is decoded at a time (an hour at 48 kHz is
    0.7 GB), and decoded again to write its segments: holding them all between the two steps would
    take memory for all of them together."""
    plans, problems = [], []
    for index, path in enumerate(paths):
        report(progress, "finding pauses", index, len(paths), path.name, unit="recording")
        try:
            if problems:  # refused anyway: only which others cannot be read matters now
                _read_source(path)
                continue
            plans.append(_plan_source(path, settings))
        except VoxmithError as err:
            problems.append(str(err))
    if problems:
        raise VoxmithError("Nothing was prepared because some recordings cannot be read:\n  - "
                           + "\n  - ".join(problems))
    report(progress, "finding pauses", len(paths), len(paths), unit="recording")
    spans = [span for plan in plans for span in plan.cuts]
    if not spans:
        raise VoxmithError("No speech was found in the recordings (they are silent or contain only noise).")
    if all("too short" in span.flags for span in spans):
        speech = sum(span.duration_s for span in spans)
        raise VoxmithError(f"The recordings are too short to make a dataset: {speech:.1f} s of speech in all, "
                           f"and every segment needs at least {settings.min_seconds:g} s. Add longer recordings "
                           "or lower --min-seconds.")
    return plans


def _write_segments(dataset: Dataset, plans: List[SourcePlan], identities: Dict[Path, FileIdentity],
                    settings: PrepareSettings, progress) -> List[dict]:
    """Write segment audio, one recording decoded at a time; return segment records (untranscribed).
    `identities`: each source's size and time when the run began."""
    audio_dir = dataset.path / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    segments: List[dict] = []
    total = sum(len(plan.cuts) for plan in plans)
    for plan in plans:
        if plan.cuts:
            _write_source_segments(dataset, plan, identities[plan.path], settings, segments, total, progress)
    report(progress, "writing segments", total, total, unit="segment")
    return segments


def _decode_again(plan: SourcePlan, identity: FileIdentity) -> Audio:
    """The recording `plan` was made from, decoded again; refused if it is gone or not the same file
    (its cuts would land in other words, under the first file's fingerprint)."""
    changed = VoxmithError(f"'{plan.path}' was moved or changed while the dataset was being prepared; nothing "
                           "was kept (the dataset is as it was). Run the command again.")
    if _file_identity(plan.path) != identity:
        raise changed
    try:
        audio = _read_source(plan.path)
    except VoxmithError as err:
        raise VoxmithError(f"'{plan.path}' could not be read a second time, to write its segments ({err}); "
                           "nothing was kept (the dataset is as it was). Check that it is still there (its drive "
                           "still connected), then run the command again.") from None
    if (len(audio.samples), audio.sample_rate_hz) != (plan.frames, plan.sample_rate_hz) \
            or _file_identity(plan.path) != identity:  # (replaced while it was being decoded)
        raise changed
    return audio


def _write_source_segments(dataset: Dataset, plan: SourcePlan, identity: FileIdentity, settings: PrepareSettings,
                           segments: List[dict], total: int, progress) -> None:
    """Write one recording's segments, appending their records to `segments`."""
    path = plan.path
    report(progress, "writing segments", len(segments), total, path.name, unit="segment")  # while it decodes
    audio = _decode_again(plan, identity)
    for span in plan.cuts:
        report(progress, "writing segments", len(segments), total, path.name, unit="segment")
        number = len(segments) + 1
        segment_id = f"{dataset.name}_{number:05d}"
        start, end = int(span.start_s * audio.sample_rate_hz), int(span.end_s * audio.sample_rate_hz)
        piece = audio.samples[start:end]
        flags = list(span.flags)
        if piece.size and float(np.max(np.abs(piece))) >= CLIP_LEVEL:
            flags.append("clipped")
        out = resample(piece, audio.sample_rate_hz, settings.sample_rate_hz)
        save_audio(dataset.path / "audio" / f"{segment_id}.wav",
                   loudness_normalize(out, settings.sample_rate_hz, settings.target_lufs),
                   settings.sample_rate_hz)
        segments.append({
            "id": segment_id, "file": f"audio/{segment_id}.wav", "source": str(path),
            "start_s": round(span.start_s, 3), "end_s": round(span.end_s, 3),
            "duration_s": round(span.duration_s, 3), "transcript": None, "language": None,
            "avg_logprob": None, "no_speech_prob": None, "flags": flags, "edited": False, "dropped": False,
        })


def _flag_other_speakers(dataset: Dataset, segments: List[dict]) -> None:
    """Mark segments whose voice is far from the main speaker's (GE2E; the majority speaker)."""
    from voxmith.speaker import get_speaker_encoder
    from voxmith.speaker.main_speaker import similarities_to_main_speaker

    usable = [s for s in segments if s["duration_s"] >= 1.0]
    if len(usable) < 3:
        return
    encoder = get_speaker_encoder("cpu")
    embeddings = []
    for s in usable:
        audio = load_audio(dataset.path / s["file"])
        embeddings.append(encoder.embed(audio.samples, audio.sample_rate_hz))
    for s, similarity in zip(usable, similarities_to_main_speaker(embeddings)):
        s["speaker_similarity"] = round(float(similarity), 4)
        if s["speaker_similarity"] < OTHER_SPEAKER_COSINE:
            s["flags"].append("unlike the main speaker (music, overlap or another speaker?)")


def _transcribe(dataset: Dataset, record: dict, settings: PrepareSettings, redo: bool, progress) -> int:
    from voxmith.asr import get_transcriber

    todo = [s for s in record["segments"]
            if not s.get("dropped") and not s.get("edited") and (redo or s["transcript"] is None)]
    if not todo:
        return 0
    transcriber = get_transcriber(settings.model, "cpu")
    language = None if settings.language == "auto" else settings.language
    for i, segment in enumerate(todo):
        report(progress, "transcribing", i, len(todo), segment["id"], unit="segment")
        audio = load_audio(dataset.path / segment["file"])
        result = transcriber.transcribe(audio.samples, audio.sample_rate_hz, language=language, beam_size=5)
        flags = [f for f in segment["flags"] if f not in ("low confidence", "empty transcript")]
        logprobs = [s.avg_logprob for s in result.segments]
        segment.update(transcript=result.text, language=result.language,
                       avg_logprob=round(float(np.mean(logprobs)), 4) if logprobs else None,
                       no_speech_prob=round(max((s.no_speech_prob for s in result.segments), default=1.0), 4))
        if not result.text.strip():
            flags.append("empty transcript")
        elif (segment["avg_logprob"] is not None and segment["avg_logprob"] < LOW_LOGPROB) \
                or segment["no_speech_prob"] > HIGH_NO_SPEECH:
            flags.append("low confidence")
        segment["flags"] = flags
        dataset.save(record)  # after every segment: an interruption loses at most one
    report(progress, "transcribing", len(todo), len(todo), unit="segment")
    return len(todo)


def prepare_dataset(dataset: Dataset, sources: Sequence[Path], settings: PrepareSettings, redo: bool = False,
                    progress: Optional[ProgressCallback] = None) -> dict:
    """Build or resume `dataset` from `sources`; returns the dataset summary. Refused while another
    process prepares or edits it (Dataset.changing)."""
    settings.validate()
    with dataset.changing("wait for it to finish (or stop it), then run the command again (it resumes)"):
        return _prepare(dataset, sources, settings, redo, progress)


def _prepare(dataset: Dataset, sources: Sequence[Path], settings: PrepareSettings, redo: bool,
             progress: Optional[ProgressCallback]) -> dict:
    paths = [Path(p) for p in sources]
    if not paths:
        raise VoxmithError("No recordings given: pass voices or audio files with --from.")
    # Taken before the fingerprint is: a source that changes after it, until its segments are written,
    # is refused rather than cut by a plan made for other audio and recorded under this fingerprint.
    identities = {p.resolve(): _file_identity(p) for p in paths}
    fingerprint = fingerprint_files(paths)  # of what was given: a dataset made before resumes as it was
    paths = list(dict.fromkeys(p.resolve() for p in paths))  # a file named twice is one source
    settle_interrupted(dataset)  # a run killed while swapping in its segments: the dataset as it was
    existing = dataset.load() if dataset.record_path.exists() and not redo else None  # (--redo: even a damaged one)
    resumable = (existing is not None and not redo and existing.get("fingerprint") == fingerprint
                 and existing.get("slicing") == settings.slicing_key())
    if existing is not None and not resumable and not redo:
        raise VoxmithError(f"Dataset '{dataset.name}' already exists from other recordings or slicing settings. "
                           "Pass --redo to rebuild it (edited transcripts are lost), or choose another name.")
    if resumable:
        record = existing
        record["settings"] = asdict(settings)  # language/model/ratio may change on resume
    else:
        # The same recording given twice (a voice and its folder, a WAV and its MP3) would put the same
        # lines in train and validation: only its first copy is sliced. Found here, where the dataset
        # is made (decoding every source): a resume has the record's `left_out`, a refused run stops first.
        copies = same_recordings(paths)
        left_out = [{"path": str(p.resolve()), "same_as": str(first.resolve())} for p, first in copies.items()]
        for item in left_out:
            report(progress, f"left out {Path(item['path']).name}: the same recording as "
                             f"{Path(item['same_as']).name}", 0, None)
        paths = [p for p in paths if p not in copies]
        plans = _plan(paths, settings, progress)
        # Written beside the dataset and swapped in whole: --redo's old audio goes only once the new
        # set exists, and a failure on the way leaves the dataset as it was.
        with replacing_segments(dataset) as staged:
            segments = _write_segments(staged, plans, identities, settings, progress)
            _flag_other_speakers(staged, segments)
            record = {"name": dataset.name, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                      "fingerprint": fingerprint, "slicing": settings.slicing_key(), "settings": asdict(settings),
                      "sources": [{"path": str(plan.path), "duration_s": round(plan.duration_s, 3)}
                                  for plan in plans],
                      "sample_rate_hz": settings.sample_rate_hz, "segments": segments,
                      **({"left_out": left_out} if left_out else {})}
            staged.save(record)
    try:
        transcribed = _transcribe(dataset, record, settings, redo, progress)
    finally:
        dataset.save(record)
    return {**dataset.summary(), "transcribed_now": transcribed}
