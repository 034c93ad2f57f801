"""A book's manifest.json as types: what `voxmith book` made, chapter by chapter and sentence by sentence.

Written once per run of a book (`book.BookMaker.finish`), read by `load_book`, the CLI and the web
UI's Book tab. `to_json` gives the file's dict (keys in the order users have always seen);
`from_json` reads schema 1 (no "schema" key, written before this module) and 2, keeps keys it does
not know, and refuses a manifest from a newer voxmith.

Not here: the per-sentence records in `sentences/` (the maker's own resume state), writing files.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from voxmith.errors import VoxmithError
from voxmith.studio.record import FinetuneUsed, RefsSource, VoiceSource

# 2: the "schema" key. 1: manifests written before, without it. The optional "finetune" (book and
# sentences) and sentences' "details" came later without a new number: a voxmith that does not know
# them keeps them as unknown keys.
BOOK_SCHEMA_VERSION = 2


@dataclass(frozen=True)
class BookChapter:
    number: int
    title: str
    file: str  # relative to the book's folder
    start_s: float  # in the joined book
    end_s: float
    sentences: int


@dataclass(frozen=True)
class BookSentence:
    id: str  # e.g. "c03-s0042": what --redo takes
    chapter: int
    text: str
    status: str  # "ok", or "review" when its best take still failed ranking
    chapter_start_s: float
    start_s: float  # in the joined book
    end_s: float
    take: int  # the chosen take
    takes: int  # how many were made
    seed: int  # the chosen take's
    scores: Optional[Dict[str, Any]] = None
    redo: int = 0  # how many times --redo made it again
    # The engine's record of the chosen take, as a speech's sidecar keeps each take's (piper-vc: how it
    # was converted and the intelligibility guard's outcome, the fine-tune check's included).
    details: Dict[str, Any] = field(default_factory=dict)
    finetune: Optional[FinetuneUsed] = None  # the fine-tuned weights that read it (None: stock)
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("extra", "details", "finetune")}
        if self.details:  # absent from manifests written before they were recorded
            out["details"] = self.details
        if self.finetune is not None:
            out["finetune"] = self.finetune.to_json()
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class BookManifest:
    seed: int
    book_file: str  # the book's file name (not its path: uploads move)
    book_fingerprint: str
    engine_name: str
    engine_version: str
    settings: Dict[str, Any]
    output_file: str
    duration_s: float
    sample_rate_hz: int
    chapters: List[BookChapter]
    sentences: List[BookSentence]
    review: List[str] = field(default_factory=list)  # ids of the sentences to listen to
    voice: Optional[VoiceSource] = None
    refs: Optional[RefsSource] = None
    finetune: Optional[FinetuneUsed] = None  # the fine-tuned weights that read the book (None: stock)
    candidates: int = 1
    ranking: Dict[str, Any] = field(default_factory=dict)
    pauses: Dict[str, Any] = field(default_factory=dict)
    audio_format: str = "m4b"
    source_path: str = ""
    created: str = ""
    voxmith_version: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)  # keys this voxmith does not know: kept as they are
    schema: int = BOOK_SCHEMA_VERSION

    def to_json(self) -> dict:
        out: Dict[str, Any] = {"schema": self.schema, "voxmith_version": self.voxmith_version, "kind": "book",
                               "created": self.created, "seed": self.seed,
                               "book": {"file": self.book_file, "fingerprint": self.book_fingerprint}}
        if self.voice is not None:
            out["voice"] = dataclasses.asdict(self.voice)
        if self.refs is not None:
            out["refs"] = dataclasses.asdict(self.refs)
        if self.finetune is not None:
            out["finetune"] = self.finetune.to_json()
        out.update({
            "engine": {"name": self.engine_name, "version": self.engine_version}, "settings": self.settings,
            "candidates": self.candidates, "ranking": self.ranking, "pauses": self.pauses, "format": self.audio_format,
            "source_path": self.source_path,
            "output": {"file": self.output_file, "duration_s": self.duration_s, "sample_rate_hz": self.sample_rate_hz},
            "chapters": [dataclasses.asdict(c) for c in self.chapters],
            "sentences": [s.to_json() for s in self.sentences], "review": list(self.review),
        })
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "the book's manifest") -> "BookManifest":
        if not isinstance(data, Mapping) or data.get("kind") != "book":
            raise VoxmithError(f"{where} is not a voxmith book manifest.")
        schema = int(data.get("schema", 1))
        if schema > BOOK_SCHEMA_VERSION:
            raise VoxmithError(f"{where} was written by a newer voxmith (book schema {schema}; this one reads up "
                               f"to {BOOK_SCHEMA_VERSION}). Update voxmith to use it.")
        try:
            book, engine, output = data.get("book") or {}, data["engine"], data["output"]
            voice, refs = data.get("voice"), data.get("refs")
            return cls(
                seed=int(data["seed"]), book_file=str(book.get("file", "")),
                book_fingerprint=str(book.get("fingerprint", "")),
                engine_name=str(engine["name"]), engine_version=str(engine["version"]),
                settings=dict(data.get("settings", {})), output_file=str(output["file"]),
                duration_s=float(output.get("duration_s", 0.0)), sample_rate_hz=int(output.get("sample_rate_hz", 0)),
                chapters=[BookChapter(int(c["number"]), str(c["title"]), str(c["file"]), float(c["start_s"]),
                                      float(c["end_s"]), int(c["sentences"])) for c in data.get("chapters", [])],
                sentences=[_sentence(s) for s in data.get("sentences", [])],
                review=[str(i) for i in data.get("review", [])],
                voice=VoiceSource(str(voice["name"]), str(voice["fingerprint"]), list(voice.get("clips", [])))
                if voice else None,
                refs=RefsSource([str(f) for f in refs["files"]], str(refs.get("fingerprint", ""))) if refs else None,
                finetune=_finetune(data.get("finetune")),
                candidates=int(data.get("candidates", 1)), ranking=dict(data.get("ranking", {})),
                pauses=dict(data.get("pauses", {})), audio_format=str(data.get("format", "m4b")),
                source_path=str(data.get("source_path", "")), created=str(data.get("created", "")),
                voxmith_version=str(data.get("voxmith_version", "")),
                extra={k: v for k, v in data.items() if k not in _KEYS}, schema=schema)
        except (KeyError, TypeError, ValueError) as err:
            raise VoxmithError(f"{where} is not a complete book manifest ({type(err).__name__}: {err}); run the "
                               "book again to rebuild it.") from None


_KEYS = frozenset({"schema", "voxmith_version", "kind", "created", "seed", "book", "voice", "refs", "finetune",
                   "engine", "settings", "candidates", "ranking", "pauses", "format", "source_path", "output", "chapters",
                   "sentences", "review"})
_SENTENCE_FIELDS = tuple(f.name for f in dataclasses.fields(BookSentence) if f.name != "extra")


def _sentence(data: Mapping) -> BookSentence:
    return BookSentence(
        id=str(data["id"]), chapter=int(data["chapter"]), text=str(data["text"]), status=str(data["status"]),
        chapter_start_s=float(data["chapter_start_s"]), start_s=float(data["start_s"]), end_s=float(data["end_s"]),
        take=int(data["take"]), takes=int(data["takes"]), seed=int(data["seed"]), scores=data.get("scores"),
        redo=int(data.get("redo", 0)), details=dict(data.get("details") or {}), finetune=_finetune(data.get("finetune")),
        extra={k: v for k, v in data.items() if k not in _SENTENCE_FIELDS})


def _finetune(data: Any) -> Optional[FinetuneUsed]:
    if not data:
        return None
    return FinetuneUsed(str(data["run"]), data.get("checkpoint", data["step"]), int(data["step"]))


__all__ = ["BOOK_SCHEMA_VERSION", "BookChapter", "BookManifest", "BookSentence"]
