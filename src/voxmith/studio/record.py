"""The result record: what the JSON sidecar beside every generated file says, as types.

A `ResultRecord` is written once, when a speech is finished (`speech.speak_sentences`), and read
wherever a result is looked at again: `Studio.reproduce`, the CLI, the web UI's history and the
results listing. `to_json` gives the sidecar's dict (keys in the order users have always seen),
`from_json` reads any sidecar voxmith wrote: schema 1 (no "schema" key, before this module) and 2.
A sidecar from a newer voxmith, or one missing what reproducing needs, is refused with a message.

`ConversionRecord` is the sidecar of a converted recording (`voxmith convert`, kind "convert"):
schema 1 (no "schema" key) and 2. `read_record` reads either kind from a file.

`FinetuneChoice` is which weights a request asks for (the voice's own setting, the stock weights,
or a run's checkpoint); `FinetuneUsed` is what the record says was used.

Not here: writing files (speech.py writes the sidecar), or how takes are scored (ranking.py).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Union

from voxmith.errors import VoxmithError
from voxmith.fsutil import read_json

# 2: "schema" key; each take keeps the engine's own scores ("engine_scores", e.g. tortoise's
# CLVP/CVVP). 1: the sidecars written before, without a "schema" key.
SCHEMA_VERSION = 2
# Conversion sidecars: 2 adds the "schema" key; 1 is what `voxmith convert` wrote before.
CONVERSION_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class FinetuneChoice:
    """Which weights a request speaks with: kind "voice" (what the voice is set to use, `voices
    use`), "stock", or "run" (that training run's checkpoint: "latest", "best" or a step)."""

    kind: str
    run: Optional[str] = None
    checkpoint: Union[str, int] = "latest"

    @classmethod
    def voice_setting(cls) -> "FinetuneChoice":
        return cls("voice")

    @classmethod
    def stock(cls) -> "FinetuneChoice":
        return cls("stock")

    @classmethod
    def of_run(cls, run: str, checkpoint: Union[str, int] = "latest") -> "FinetuneChoice":
        return cls("run", str(run), checkpoint)

    @classmethod
    def coerce(cls, value: Any) -> "FinetuneChoice":
        """A choice from what callers used to pass: None (the voice's setting), {} (stock) or
        {"run": RUN, "checkpoint": ...}; a FinetuneChoice is returned as it is."""
        if isinstance(value, FinetuneChoice):
            return value
        if value is None:
            return cls.voice_setting()
        if isinstance(value, Mapping):
            if value.get("run") is None:
                return cls.stock()
            return cls.of_run(value["run"], value.get("checkpoint", "latest"))
        raise VoxmithError(f"A fine-tune choice is a run and checkpoint, the stock weights or the voice's own "
                           f"setting, not {value!r}.")

    def __post_init__(self) -> None:
        if self.kind not in ("voice", "stock", "run"):
            raise VoxmithError(f"Unknown fine-tune choice '{self.kind}': use voice, stock or run.")
        if (self.kind == "run") != bool(self.run):
            raise VoxmithError("A fine-tune choice names a training run exactly when it is a run's checkpoint.")


@dataclass(frozen=True)
class FinetuneUsed:
    """The fine-tuned weights a result was made with."""

    run: str
    checkpoint: Union[str, int]  # as asked: "latest", "best" or a step
    step: int  # the checkpoint's step: what reproducing asks for

    def to_json(self) -> dict:
        return {"run": self.run, "checkpoint": self.checkpoint, "step": self.step}


@dataclass(frozen=True)
class VoiceSource:
    name: str
    fingerprint: str  # of the voice's clips when the result was made
    clips: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class RefsSource:
    files: List[str]
    fingerprint: str


@dataclass(frozen=True)
class TakeRecord:
    seed: int
    duration_s: float
    details: Dict[str, Any] = field(default_factory=dict)  # the engine's record of how it made the take
    scores: Optional[Dict[str, Any]] = None  # the studio's ranking (similarity, wer...); None unranked
    engine_scores: Dict[str, float] = field(default_factory=dict)  # the engine's own (tortoise: clvp, cvvp)
    file: Optional[str] = None  # the take's own WAV, relative to the result, when there were several
    refused: Optional[str] = None  # why the ranking refused this take (e.g. too unnatural), if it did
    extra: Dict[str, Any] = field(default_factory=dict)  # keys this voxmith does not know: kept as they are

    def to_json(self) -> dict:
        out = {"seed": self.seed, "duration_s": self.duration_s, "details": self.details, "scores": self.scores}
        if self.engine_scores:
            out["engine_scores"] = self.engine_scores
        if self.refused:
            out["refused"] = self.refused
        if self.file is not None:
            out["file"] = self.file
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class SentenceRecord:
    text: str
    normalized: str
    chosen_take: int
    seconds: float
    takes: List[TakeRecord]
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"text": self.text, "normalized": self.normalized, "chosen_take": self.chosen_take,
                "seconds": self.seconds, "takes": [t.to_json() for t in self.takes], **self.extra}


@dataclass(frozen=True)
class ResultRecord:
    text: str
    engine_name: str
    engine_version: str
    settings: Dict[str, Any]
    seed: int
    candidates: int
    ranking: Dict[str, Any]  # RankingSettings' fields, and "enabled"
    output_file: str
    duration_s: float
    sample_rate_hz: int
    sentences: List[SentenceRecord]
    voice: Optional[VoiceSource] = None
    refs: Optional[RefsSource] = None
    finetune: Optional[FinetuneUsed] = None
    device: str = ""
    created: str = ""
    voxmith_version: str = ""
    total_s: float = 0.0
    real_time_factor: float = 0.0
    origin: Dict[str, Any] = field(default_factory=dict)  # where the request came from (HTTP API...)
    warnings: List[str] = field(default_factory=list)
    # A long request continued from its stored sentences: {"sentences_done_before", "sentences_total"}.
    resumed: Optional[Dict[str, int]] = None
    # Ctrl-C kept the finished sentences: {"sentences_done", "sentences_total"}.
    interrupted: Optional[Dict[str, int]] = None
    extra: Dict[str, Any] = field(default_factory=dict)  # keys this voxmith does not know: kept as they are
    schema: int = SCHEMA_VERSION

    @property
    def voice_label(self) -> str:
        return self.voice.name if self.voice else "(reference clips)"

    @property
    def ranked(self) -> bool:
        return bool(self.ranking.get("enabled", True))

    def to_json(self) -> dict:
        out: Dict[str, Any] = {"schema": self.schema, "voxmith_version": self.voxmith_version,
                               "created": self.created, "text": self.text}
        if self.voice is not None:
            out["voice"] = dataclasses.asdict(self.voice)
        if self.refs is not None:
            out["refs"] = dataclasses.asdict(self.refs)
        if self.finetune is not None:
            out["finetune"] = self.finetune.to_json()
        out.update({
            "engine": {"name": self.engine_name, "version": self.engine_version},
            "settings": self.settings, "seed": self.seed, "candidates": self.candidates,
            "ranking": self.ranking, "device": self.device,
            "output": {"file": self.output_file, "duration_s": self.duration_s, "sample_rate_hz": self.sample_rate_hz},
            "timing": {"total_s": self.total_s, "real_time_factor": self.real_time_factor},
            "sentences": [s.to_json() for s in self.sentences],
        })
        if self.origin:
            out["origin"] = self.origin
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.resumed:
            out["resumed"] = dict(self.resumed)
        if self.interrupted:
            out["interrupted"] = dict(self.interrupted)
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "the sidecar") -> "ResultRecord":
        """Read a sidecar of schema 1 or 2; refuses newer schemas and sidecars missing required keys."""
        if not isinstance(data, Mapping):
            raise VoxmithError(f"{where} is not a voxmith result sidecar (not a JSON object).")
        schema = int(data.get("schema", 1))
        if schema > SCHEMA_VERSION:
            raise VoxmithError(f"{where} was written by a newer voxmith (result schema {schema}; this one "
                               f"reads up to {SCHEMA_VERSION}). Update voxmith to use it.")
        try:
            voice, refs, finetune = data.get("voice"), data.get("refs"), data.get("finetune")
            output, timing, engine = data.get("output") or {}, data.get("timing") or {}, data["engine"]
            return cls(
                text=str(data["text"]), engine_name=str(engine["name"]), engine_version=str(engine["version"]),
                settings=dict(data.get("settings", {})), seed=int(data["seed"]),
                candidates=int(data.get("candidates", 1)), ranking=dict(data.get("ranking", {})),
                output_file=str(output.get("file", "")), duration_s=float(output.get("duration_s", 0.0)),
                sample_rate_hz=int(output.get("sample_rate_hz", 0)),
                sentences=[_sentence(s) for s in data.get("sentences", [])],
                voice=_voice(voice), refs=_refs(refs),
                finetune=FinetuneUsed(str(finetune["run"]), finetune.get("checkpoint", finetune["step"]),
                                      int(finetune["step"])) if finetune else None,
                device=str(data.get("device", "")), created=str(data.get("created", "")),
                voxmith_version=str(data.get("voxmith_version", "")),
                total_s=float(timing.get("total_s", 0.0)), real_time_factor=float(timing.get("real_time_factor", 0.0)),
                origin=dict(data.get("origin", {})), warnings=[str(w) for w in data.get("warnings", [])],
                resumed=dict(data["resumed"]) if data.get("resumed") else None,
                interrupted=dict(data["interrupted"]) if data.get("interrupted") else None,
                extra={k: v for k, v in data.items() if k not in _RESULT_KEYS}, schema=schema,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise VoxmithError(f"{where} is not a complete voxmith result sidecar ({type(err).__name__}: {err}); "
                               "it needs at least text, engine and seed.") from None


@dataclass(frozen=True)
class ConversionRecord:
    """What a conversion's sidecar says: the recording converted (and its fingerprint, so a changed
    recording is not reproduced), the voice, engine, settings, what the engine fitted to the
    recording (`conversion`), how it was cut into chunks, and the output."""

    input_file: str
    input_fingerprint: str
    engine_name: str
    engine_version: str
    settings: Dict[str, Any]
    output_file: str
    duration_s: float
    sample_rate_hz: int
    conversion: Dict[str, Any] = field(default_factory=dict)  # the engine's choices for this recording
    input_duration_s: float = 0.0
    voice: Optional[VoiceSource] = None
    refs: Optional[RefsSource] = None
    chunk_min_s: float = 8.0
    chunk_max_s: float = 20.0
    fit_s: float = 30.0  # seconds of the recording's start the converter was fitted on
    device: str = ""
    created: str = ""
    voxmith_version: str = ""
    total_s: float = 0.0
    real_time_factor: float = 0.0
    origin: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)  # keys this voxmith does not know: kept as they are
    schema: int = CONVERSION_SCHEMA_VERSION

    kind: ClassVar[str] = "convert"

    @property
    def voice_label(self) -> str:
        return self.voice.name if self.voice else "(reference clips)"

    def to_json(self) -> dict:
        out: Dict[str, Any] = {"schema": self.schema, "voxmith_version": self.voxmith_version, "kind": self.kind,
                               "created": self.created,
                               "input": {"file": self.input_file, "fingerprint": self.input_fingerprint,
                                         "duration_s": self.input_duration_s}}
        if self.voice is not None:
            out["voice"] = dataclasses.asdict(self.voice)
        if self.refs is not None:
            out["refs"] = dataclasses.asdict(self.refs)
        out.update({
            "engine": {"name": self.engine_name, "version": self.engine_version}, "settings": self.settings,
            "conversion": self.conversion,
            "chunking": {"min_s": self.chunk_min_s, "max_s": self.chunk_max_s, "fit_s": self.fit_s},
            "device": self.device,
            "output": {"file": self.output_file, "duration_s": self.duration_s, "sample_rate_hz": self.sample_rate_hz},
            "timing": {"total_s": self.total_s, "real_time_factor": self.real_time_factor},
        })
        if self.origin:
            out["origin"] = self.origin
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "the sidecar") -> "ConversionRecord":
        """Read a conversion sidecar of schema 1 or 2; refuses newer schemas and incomplete ones."""
        if not is_conversion(data):
            raise VoxmithError(f"{where} is not the sidecar of a converted recording.")
        schema = int(data.get("schema", 1))
        if schema > CONVERSION_SCHEMA_VERSION:
            raise VoxmithError(f"{where} was written by a newer voxmith (conversion schema {schema}; this one "
                               f"reads up to {CONVERSION_SCHEMA_VERSION}). Update voxmith to use it.")
        try:
            source, engine = data["input"], data["engine"]
            output, timing, chunking = data.get("output") or {}, data.get("timing") or {}, data.get("chunking") or {}
            return cls(
                input_file=str(source["file"]), input_fingerprint=str(source["fingerprint"]),
                input_duration_s=float(source.get("duration_s", 0.0)),
                engine_name=str(engine["name"]), engine_version=str(engine["version"]),
                settings=dict(data.get("settings", {})), conversion=dict(data.get("conversion", {})),
                output_file=str(output.get("file", "")), duration_s=float(output.get("duration_s", 0.0)),
                sample_rate_hz=int(output.get("sample_rate_hz", 0)),
                voice=_voice(data.get("voice")), refs=_refs(data.get("refs")),
                chunk_min_s=float(chunking.get("min_s", 8.0)), chunk_max_s=float(chunking.get("max_s", 20.0)),
                fit_s=float(chunking.get("fit_s", 30.0)), device=str(data.get("device", "")),
                created=str(data.get("created", "")), voxmith_version=str(data.get("voxmith_version", "")),
                total_s=float(timing.get("total_s", 0.0)), real_time_factor=float(timing.get("real_time_factor", 0.0)),
                origin=dict(data.get("origin", {})),
                extra={k: v for k, v in data.items() if k not in _CONVERSION_KEYS}, schema=schema)
        except (KeyError, TypeError, ValueError) as err:
            raise VoxmithError(f"{where} is not a complete conversion sidecar ({type(err).__name__}: {err}); "
                               "it needs at least input, engine and output.") from None


def is_conversion(data: Any) -> bool:
    """Whether a sidecar's JSON is a conversion's (rather than a spoken result's)."""
    return isinstance(data, Mapping) and data.get("kind") == "convert" and isinstance(data.get("input"), Mapping)


def read_record(path: str | os.PathLike) -> Union[ResultRecord, ConversionRecord]:
    """The record in any result sidecar (spoken or converted), or an error saying why `path` is not one."""
    sidecar = _read_object(path)
    if is_conversion(sidecar):
        return ConversionRecord.from_json(sidecar, f"'{path}'")
    return _result_from(sidecar, path)


def read_result(path: str | os.PathLike) -> ResultRecord:
    """The record in a spoken result's sidecar, or an error saying why `path` is not one."""
    return _result_from(_read_object(path), path)


_MISSING = object()


def _read_object(path: str | os.PathLike) -> dict:
    sidecar_path = Path(path).with_suffix(".json")
    if Path(path).suffix.lower() != ".json" and sidecar_path.is_file():
        path = sidecar_path  # the result's audio was named (`reproduce take.wav`): its sidecar is beside it
    what = f"'{path}' is not a voxmith result sidecar (the .json file written beside each result)"
    try:
        # a default no JSON can hold: a file missing (or deleted just now) is not "a JSON NoneType"
        sidecar = read_json(path, default=_MISSING)
    except (ValueError, OSError) as err:  # not JSON, not text, or unreadable
        raise VoxmithError(f"{what}: it cannot be read as JSON ({type(err).__name__}).") from None
    if sidecar is _MISSING:
        raise VoxmithError(f"There is no result at '{path}': it was deleted or moved.")
    if not isinstance(sidecar, dict):
        raise VoxmithError(f"{what}: it holds a JSON {type(sidecar).__name__}, not a result record.")
    return sidecar


def _result_from(sidecar: dict, path: str | os.PathLike) -> ResultRecord:
    what = f"'{path}' is not a voxmith result sidecar (the .json file written beside each result)"
    engine = sidecar.get("engine")
    missing = [key for key, ok in (
        ("text", isinstance(sidecar.get("text"), str)),
        ("engine", isinstance(engine, dict) and {"name", "version"} <= set(engine)),
        ("seed", isinstance(sidecar.get("seed"), int)),
        ("voice or refs", isinstance(sidecar.get("voice"), dict) and {"name", "fingerprint"} <= set(sidecar["voice"])
         or isinstance(sidecar.get("refs"), dict) and isinstance(sidecar["refs"].get("files"), list)),
    ) if not ok]
    if missing:
        raise VoxmithError(f"{what}: it has no valid {', '.join(missing)}.")
    return ResultRecord.from_json(sidecar, f"'{path}'")


def text_of_result(sidecar_path: Path) -> Optional[str]:
    """The text a result was made from, if `sidecar_path` is a readable result sidecar; else None."""
    try:
        return read_result(sidecar_path).text if Path(sidecar_path).is_file() else None
    except VoxmithError:
        return None


def voice_of_result(sidecar_path: Path) -> Optional[str]:
    """The library voice a result (spoken or converted) was made in, if `sidecar_path` is a readable
    result sidecar naming one; else None."""
    try:
        record = read_record(sidecar_path) if Path(sidecar_path).is_file() else None
    except VoxmithError:
        return None
    voice = getattr(record, "voice", None)
    return voice.name if voice is not None else None


_RESULT_KEYS = frozenset({"schema", "voxmith_version", "created", "text", "voice", "refs", "finetune", "engine",
                          "settings", "seed", "candidates", "ranking", "device", "output", "timing", "sentences",
                          "origin", "warnings", "resumed", "interrupted"})
_SENTENCE_KEYS = frozenset({"text", "normalized", "chosen_take", "seconds", "takes"})
_TAKE_KEYS = frozenset({"seed", "duration_s", "details", "scores", "engine_scores", "refused", "file"})


_CONVERSION_KEYS = frozenset({"schema", "voxmith_version", "kind", "created", "input", "voice", "refs", "engine",
                              "settings", "conversion", "chunking", "device", "output", "timing", "origin"})


def _voice(data: Any) -> Optional[VoiceSource]:
    return VoiceSource(str(data["name"]), str(data["fingerprint"]), list(data.get("clips", []))) if data else None


def _refs(data: Any) -> Optional[RefsSource]:
    return RefsSource([str(f) for f in data["files"]], str(data.get("fingerprint", ""))) if data else None


def _sentence(data: Mapping) -> SentenceRecord:
    return SentenceRecord(
        text=str(data["text"]), normalized=str(data.get("normalized", data["text"])),
        chosen_take=int(data.get("chosen_take", 0)), seconds=float(data.get("seconds", 0.0)),
        takes=[TakeRecord(seed=int(t["seed"]), duration_s=float(t.get("duration_s", 0.0)),
                          details=dict(t.get("details") or {}), scores=t.get("scores"),
                          engine_scores=dict(t.get("engine_scores") or {}), file=t.get("file"),
                          refused=t.get("refused") or None,
                          extra={k: v for k, v in t.items() if k not in _TAKE_KEYS})
               for t in data.get("takes", [])],
        extra={k: v for k, v in data.items() if k not in _SENTENCE_KEYS})


__all__ = ["CONVERSION_SCHEMA_VERSION", "SCHEMA_VERSION", "ConversionRecord", "FinetuneChoice", "FinetuneUsed",
           "RefsSource", "ResultRecord", "SentenceRecord", "TakeRecord", "VoiceSource", "is_conversion", "read_record",
           "read_result", "text_of_result"]
