"""Audiobooks: a text, Markdown or EPUB book read in a voice, chapter by chapter, resumable.

The book's folder (default `results/VOICE/<book>-book/`) holds:
    sentences/<id>.npy, <id>.json   each finished sentence (its samples with the pause after it,
                                   and its record: text, seed, every take's scores, status), written
                                   as it is made: a re-run skips what is there (resume after any
                                   interruption), `--redo ID` replaces one
    chapters/NN.<ext>              one audio file per chapter, made from its sentences
    book.m4b                       the whole book with chapter markers (AAC; or book.<ext> plus
                                   chapters.json and book.cue for other formats)
    manifest.json                  the book's settings and every sentence: chapter, audio span
                                   (in the chapter and the book), take, scores, status
Sentences whose best take still fails ranking after the retries (WER over the limit, or words
missing) get status "review" and are listed in the manifest's `review`. Only a sentence file and a
chapter's file are in memory at a time: memory does not grow with the book.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import time
import zipfile
from shlex import quote
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from voxmith.version import __version__
from voxmith.audio.chapters import cue_sheet, write_m4b
from voxmith.audio.stream import StreamWriter
from voxmith.engines import Engine
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path, atomic_write_json, atomic_write_text, read_json
from voxmith.paths import canonical_name
from voxmith.progress import ProgressCallback, report
from voxmith.studio.fragments import accepts_with_neighbour, fails_on_words_only, joins, judge_joined, short_joins
from voxmith.studio.ranking import RankingSettings, TakeScores, needs_regeneration
from voxmith.studio.book_manifest import BOOK_SCHEMA_VERSION, BookManifest
from voxmith.studio.record import FinetuneChoice
from voxmith.studio.speech import SEED_STRIDE, SpeakRequest, Speaker, sentence_piece
from voxmith.text import normalize_text
from voxmith.text.book import Chapter, PauseSettings, chapter_sentences, parse_book

BOOK_FORMATS = ("m4b", "mp3", "wav", "flac")
# ebooklib holds every file of an EPUB unpacked in memory; a novel, illustrations included, unpacks
# to tens of MB, so a book claiming more is refused before it is opened (a zip bomb: a few MB that
# unpack to gigabytes). Python's zipfile reads no more than each member's declared size.
MAX_EPUB_UNPACKED_BYTES = 512 * 2 ** 20
REDO_SEED_STEP = 100  # a redone sentence's takes start this far (times the redo count) from its first seed


@dataclass
class BookRequest:
    source: str | Path  # .txt, .md or .epub
    voice: Optional[str] = None
    refs: Sequence[str | Path] = ()
    engine: Optional[str] = None
    settings: Dict[str, object] = field(default_factory=dict)
    seed: Optional[int] = None  # None: random, recorded in the manifest (a re-run reuses it)
    candidates: int = 1
    ranking: RankingSettings = field(default_factory=RankingSettings)
    rank: bool = True
    pauses: PauseSettings = field(default_factory=PauseSettings)
    output_dir: Optional[Path] = None
    audio_format: str = "m4b"  # the joined book; chapters are WAV, or MP3 when this is mp3
    # Which weights read it, as for `speak`: the voice's own setting (`voices use`), the stock
    # weights, or a training run's checkpoint.
    finetune: FinetuneChoice = field(default_factory=FinetuneChoice.voice_setting)

    def __post_init__(self) -> None:
        self.finetune = FinetuneChoice.coerce(self.finetune)

    def validate(self) -> None:
        if bool(self.voice) == bool(self.refs):
            raise VoxmithError("Say whose voice reads the book: --voice NAME or --ref CLIP... (one of them).")
        if not Path(self.source).is_file():
            raise VoxmithError(f"The book '{self.source}' does not exist.")
        if self.audio_format not in BOOK_FORMATS:
            raise VoxmithError(f"--format must be one of {', '.join(BOOK_FORMATS)}.")
        if not 1 <= self.candidates <= 16:
            raise VoxmithError("The number of candidates (--candidates) must be between 1 and 16.")
        self.ranking.validate()
        self.pauses.validate()


class BookFolderTaken(VoxmithError):
    """A book's folder was started with other settings (`changed`, their names) or another seed
    (`seed`, the folder's): resuming it would mix two readings. The message names the CLI's way out;
    a shell that has none (the web UI) says its own from these fields."""

    def __init__(self, message: str, folder: Path, changed: Sequence[str] = (), seed: Optional[int] = None):
        super().__init__(message)
        self.folder, self.changed, self.seed = folder, list(changed), seed


@dataclass
class BookResult:
    folder: Path
    book_path: Path
    record: BookManifest  # manifest.json, typed

    @property
    def manifest(self) -> dict:
        """manifest.json's contents, as written."""
        return self.record.to_json()

    @property
    def review(self) -> List[str]:
        return list(self.record.review)

    def sentence_audio(self, sentence_id: str) -> np.ndarray:
        """One sentence as it is in the book (its take, trimmed, and the pause after it)."""
        path = self.folder / "sentences" / f"{sentence_id}.npy"
        if not path.is_file():
            raise VoxmithError(f"There is no sentence '{sentence_id}' in this book.")
        return np.load(path, allow_pickle=False)


def load_book(folder: Path) -> Optional[BookResult]:
    """The book made in `folder` as its last run left it (None before its first run finished)."""
    manifest = read_json(folder / "manifest.json", default=None)
    if not isinstance(manifest, dict) or manifest.get("kind") != "book":
        return None
    record = BookManifest.from_json(manifest, f"'{folder / 'manifest.json'}'")
    return BookResult(folder, folder / record.output_file, record)


def finished_sentences(folder: Path) -> int:
    """How many sentences of the book in `folder` are made (what a resumed run skips): one listing of
    the folder, no file opened (the HTTP API shows it for every unfinished job it lists)."""
    try:
        names = set(os.listdir(folder / "sentences"))
    except OSError:
        return 0
    return sum(1 for name in names if name.endswith(".json") and f"{name[:-len('.json')]}.npy" in names)


def read_chapters(path: Path, pauses: PauseSettings) -> List[Chapter]:
    """The book's chapters: EPUB through ebooklib (its spine documents with words, in reading order),
    Markdown by headings, plain text by 'Chapter N' lines."""
    from voxmith.text.files import decode_text_file, read_text_bytes

    suffix = path.suffix.lower()
    if suffix == ".epub":
        return _epub_chapters(path, pauses)
    with open(path, "rb") as stream:  # not read whole first: /dev/zero or a disk image by mistake
        text, _ = decode_text_file(read_text_bytes(stream, path.name), path.name)
    return parse_book(text, suffix in (".md", ".markdown"), pauses)


def _epub_chapters(path: Path, pauses: PauseSettings) -> List[Chapter]:
    try:
        import ebooklib
        from ebooklib import epub
    except ImportError:
        raise VoxmithError("Reading EPUB books needs the ebooklib package: pip install ebooklib "
                           "(or save the book as plain text).") from None
    from html.parser import HTMLParser

    class Words(HTMLParser):  # paragraphs and headings of an XHTML document as plain text
        def __init__(self):
            super().__init__()
            self.parts, self.title, self._in_heading = [], "", False

        def handle_starttag(self, tag, attrs):
            self._in_heading = tag in ("h1", "h2", "h3") and not self.title
            if tag in ("p", "div", "br", "h1", "h2", "h3", "li"):
                self.parts.append("\n\n")

        def handle_endtag(self, tag):
            if tag in ("h1", "h2", "h3"):
                self._in_heading = False

        def handle_data(self, data):
            if self._in_heading:
                self.title += data
            else:
                self.parts.append(data)

    _check_epub_size(path)
    try:
        book = epub.read_epub(str(path))
    except Exception as err:  # ebooklib raises many kinds for broken files
        raise VoxmithError(f"Cannot read the EPUB '{path}': {err}") from None
    chapters: List[Chapter] = []
    for item_id, _ in book.spine:
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() != ebooklib.ITEM_DOCUMENT:
            continue
        parser = Words()
        parser.feed(item.get_content().decode("utf-8", errors="replace"))
        chapter = chapter_sentences(len(chapters) + 1, parser.title.strip() or None, "".join(parser.parts), pauses)
        if chapter.sentences:
            chapters.append(chapter)
    if not chapters:
        raise VoxmithError(f"The EPUB '{path}' has no words to read.")
    return chapters


def _check_epub_size(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as err:
        raise VoxmithError(f"Cannot read the EPUB '{path}': it is not a valid EPUB (zip) file ({err}).") from None
    if unpacked > MAX_EPUB_UNPACKED_BYTES:
        raise VoxmithError(f"The EPUB '{path}' unpacks to {unpacked / 2 ** 20:.0f} MB, more than the "
                           f"{MAX_EPUB_UNPACKED_BYTES // 2 ** 20} MB a book may hold; it is refused unread "
                           "(save the book as plain text, or remove its large images).")


class BookMaker:
    """Reads one book into its folder; `make()` resumes whatever is missing, `redo(id)` one sentence."""

    def __init__(self, engine: Engine, conditioning, embedding: np.ndarray, request: BookRequest, folder: Path,
                 voice_record: dict, book_fingerprint: str, progress: Optional[ProgressCallback] = None,
                 chapters: Optional[List[Chapter]] = None):
        self.engine, self.request, self.folder, self.progress = engine, request, folder, progress
        self.rate = engine.sample_rate_hz
        # `chapters`: the book already read by the caller (Studio.book reads it before preparing the voice)
        self.chapters = chapters if chapters is not None else read_chapters(Path(request.source), request.pauses)
        settings = _as_started(engine, request.settings, read_json(folder / "book.json", default=None))
        speak_request = SpeakRequest(text="book", voice=request.voice, refs=request.refs, engine=engine.name,
                                     settings=settings, candidates=request.candidates,
                                     ranking=request.ranking, rank=request.rank)
        self.speaker = Speaker(engine, conditioning, embedding, speak_request, progress)
        self.sentences_dir = folder / "sentences"
        self.settings = {
            # the book's name and contents, not where it is (the web UI uploads it to a new place each time)
            "book": {"file": Path(request.source).name, "fingerprint": book_fingerprint},
            **voice_record,
            "engine": {"name": engine.name, "version": engine.version},
            "settings": self.speaker.settings.to_dict(),
            "candidates": request.candidates, "ranking": {**dataclasses.asdict(request.ranking), "enabled": request.rank},
            "pauses": dataclasses.asdict(request.pauses), "format": request.audio_format,
        }
        self.seed = self._seed()
        self.index = {s.id: (chapter, k, n) for n, (chapter, k, s) in enumerate(
            (c, k, s) for c in self.chapters for k, s in enumerate(c.sentences))}
        # short sentence id -> its join with its neighbour, which is made first (fragments.py)
        self.short_joins = {i: j for c in self.chapters for i, j in short_joins(c.sentences).items()}

    def _seed(self) -> int:
        """The book's seed: the one its folder was started with (the settings must match), else new."""
        state = read_json(self.folder / "book.json", default=None)
        if state is not None:
            before, now = _comparable(state.get("settings", {})), _comparable(json.loads(json.dumps(self.settings)))
            now = _without_added_defaults(before, now, self.speaker.settings)
            if before != now:
                changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
                hint = _finetune_hint(state.get("settings", {}).get("finetune"), self.settings.get("finetune")) \
                    if "finetune" in changed else ""
                raise BookFolderTaken(f"'{self.folder}' holds this book made with other settings ({', '.join(changed)}); "
                                      f"{hint}start again in another output folder (`voxmith book -o`) or after "
                                      "deleting that one.", self.folder, changed=changed)
            if self.request.seed is not None and self.request.seed >= 0 and self.request.seed != state["seed"]:
                raise BookFolderTaken(f"'{self.folder}' was started with seed {state['seed']}; use that seed or "
                                      "another output folder.", self.folder, seed=int(state["seed"]))
            return int(state["seed"])
        seed = self.request.seed if self.request.seed is not None and self.request.seed >= 0 \
            else secrets.randbelow(2 ** 31)
        atomic_write_json(self.folder / "book.json", {"voxmith_version": __version__, "seed": seed,
                                                      "settings": self.settings})
        return seed

    # --- sentences --------------------------------------------------------------------------------

    def _paths(self, sentence_id: str):
        return self.sentences_dir / f"{sentence_id}.npy", self.sentences_dir / f"{sentence_id}.json"

    def _stored(self, sentence_id: str) -> Optional[dict]:
        return read_json(self._paths(sentence_id)[1], default=None) if self._paths(sentence_id)[0].exists() else None

    def _make_sentence(self, sentence_id: str, redo: int = 0) -> dict:
        chapter, k, n = self.index[sentence_id]
        sentence = chapter.sentences[k]
        seed = self.seed + n * SEED_STRIDE + redo * REDO_SEED_STEP
        started = time.perf_counter()
        join = self.short_joins.get(sentence_id)
        # retried only if wrong joined too; its neighbour is made first (not in a ring of short ones)
        if join is not None and self.speaker.transcriber is not None and \
                all(self._stored(s.id) is not None for s in join.sentences if s.id != sentence_id):
            speech = {k: self._speech(s) for k, s in enumerate(join.sentences) if k != join.own}
            accept = accepts_with_neighbour(join, speech, self.rate, self.speaker.transcriber, self.request.ranking)
            takes, scores, best = self.speaker.speak_sentence(sentence.text, seed, accept=accept)
        else:
            takes, scores, best = self.speaker.speak_sentence(sentence.text, seed)
        piece = sentence_piece(takes[best].samples, self.rate, int(round(sentence.pause_after_s * 1000)))
        status = "unranked" if scores[best] is None else (
            "review" if needs_regeneration(scores[best], self.request.ranking) else "ok")
        record = {"id": sentence_id, "chapter": chapter.number, "text": sentence.text,
                  "normalized": normalize_text(sentence.text), "pause_after_s": sentence.pause_after_s,
                  "chosen_take": best, "status": status, "redo": redo,
                  "seconds": round(time.perf_counter() - started, 3),
                  "takes": [_take_record(t, s) for t, s in zip(takes, scores)]}
        if self.settings.get("finetune"):  # as a speech's sidecar says it (and each take's details.guard)
            record["finetune"] = self.settings["finetune"]
        samples_path, record_path = self._paths(sentence_id)
        with atomic_path(samples_path) as tmp:
            np.save(tmp, piece.astype(np.float32), allow_pickle=False)
        atomic_write_json(record_path, record)  # last: the sentence counts once this exists
        return record

    def make(self) -> BookResult:
        """Make every missing sentence, then the chapters whose sentences changed, then the book."""
        self.sentences_dir.mkdir(parents=True, exist_ok=True)
        total = len(self.index)
        done = sum(self._stored(i) is not None for i in self.index)
        if done:
            report(self.progress, f"resuming: {done} of {total} sentences already done", 0, None)
        made = 0
        for chapter in self.chapters:
            for sentence in chapter.sentences:
                for needed in self._reading_order(sentence):
                    if self._stored(needed.id) is None:
                        report(self.progress, "reading the book (sentences)", done + made, total,
                               f"chapter {chapter.number}: {needed.text[:30]}", unit="sentence")
                        self._make_sentence(needed.id)
                        made += 1
            self._judge_joined(chapter)
            self._write_chapter(chapter, force=False)
        report(self.progress, "reading the book (sentences)", total, total, unit="sentence")
        return self._write_book()

    def _reading_order(self, sentence) -> list:
        """`sentence` after the neighbours it is judged with when it is short (theirs first, in turn:
        "Two." waits for "Yes.", which waits for the sentence after it). A loop, not recursion: a
        chapter of a thousand short lines in a row ("Yes." "No." ...) is one chain that deep."""
        def neighbours(of):
            join = self.short_joins.get(of.id) if self.speaker.transcriber is not None else None  # unranked: in order
            return iter(join.sentences if join is not None else ())

        seen, order = {sentence.id}, []
        path = [(sentence, neighbours(sentence))]  # each sentence walked into, with its neighbours still to see
        while path:
            current, pending = path[-1]
            other = next((o for o in pending if o.id not in seen), None)
            if other is None:  # all its neighbours are placed: it comes after them
                path.pop()
                order.append(current)
            else:
                seen.add(other.id)
                path.append((other, neighbours(other)))
        return order

    def redo(self, sentence_id: str) -> BookResult:
        """Make one sentence again with new seeds (its next redo), rebuild its chapter and the book."""
        if sentence_id not in self.index:
            raise VoxmithError(f"There is no sentence '{sentence_id}' in this book (ids look like c01-s0003; "
                               "see manifest.json).")
        if any(self._stored(i) is None for i in self.index):
            raise VoxmithError("The book is not finished yet; run it to the end before redoing sentences.")
        previous = self._stored(sentence_id)
        self._make_sentence(sentence_id, redo=int(previous.get("redo", 0)) + 1)
        self._judge_joined(self.index[sentence_id][0])
        status = self._stored(sentence_id)["status"]  # judged again joined, if it is cut or short
        report(self.progress, f"{sentence_id}: made again ({status})", 0, None)
        self._write_chapter(self.index[sentence_id][0], force=True)
        return self._write_book()

    def _judge_joined(self, chapter: Chapter) -> None:
        """Pieces of a sentence cut by pause marks, and short sentences, that failed on their words
        alone: judged again joined (studio/fragments.py). A sentence's own status is kept in its
        record's `joined.alone`; a join is judged once for its chosen takes (again after a redo of
        any of them)."""
        if self.speaker.transcriber is None:
            return
        for join in joins(chapter.sentences):
            group = join.sentences
            records = [self._stored(s.id) for s in group]
            if any(r is None for r in records):
                continue
            takes = [[r["chosen_take"], r.get("redo", 0)] for r in records]
            judged = [(group[k], records[k]) for k in join.judged]
            alone = [r.get("joined", {}).get("alone", r["status"]) for _, r in judged]
            if "review" not in alone:  # each passes alone (after a redo): no joined verdict to keep
                for (sentence, record), status in zip(judged, alone):
                    if record.pop("joined", None) is not None:
                        atomic_write_json(self._paths(sentence.id)[1], {**record, "status": status})
                continue
            if all(r.get("joined", {}).get("takes") == takes for _, r in judged):
                continue  # judged already for these takes
            speech = [self._speech(s) for s in group]
            check = judge_joined(speech, self.rate, [s.text for s in group], self.speaker.transcriber,
                                 self.request.ranking, own=join.own)
            for (sentence, record), status in zip(judged, alone):
                chosen = TakeScores(**record["takes"][record["chosen_take"]]["scores"])
                cleared = status == "review" and check.refused is None and \
                    fails_on_words_only(chosen, self.request.ranking)
                record["status"] = "ok" if cleared else status
                record["joined"] = {"with": [s.id for s in group], **check.to_dict(), "alone": status,
                                    "takes": takes}
                atomic_write_json(self._paths(sentence.id)[1], record)

    def _speech(self, sentence) -> np.ndarray:
        """A sentence's stored audio without the pause after it."""
        piece = np.load(self._paths(sentence.id)[0], allow_pickle=False)
        pause = int(self.rate * int(round(sentence.pause_after_s * 1000)) / 1000)
        return piece[:piece.size - pause] if pause else piece

    # --- chapters and the book --------------------------------------------------------------------

    def _chapter_path(self, chapter: Chapter) -> Path:
        ext = "mp3" if self.request.audio_format == "mp3" else "wav"
        return self.folder / "chapters" / f"{chapter.number:02d}-{_slug(chapter.title)}.{ext}"

    def _chapter_pieces(self, chapter: Chapter) -> Iterator[np.ndarray]:
        for sentence in chapter.sentences:
            yield np.load(self._paths(sentence.id)[0], allow_pickle=False)

    def _write_chapter(self, chapter: Chapter, force: bool) -> None:
        path = self._chapter_path(chapter)
        newest = max(self._paths(s.id)[1].stat().st_mtime_ns for s in chapter.sentences)
        if not force and path.exists() and path.stat().st_mtime_ns >= newest:
            return  # made from these very sentences already
        with StreamWriter(path, self.rate) as writer:
            for piece in self._chapter_pieces(chapter):
                writer.write(piece)

    def _write_book(self) -> BookResult:
        chapter_pause = np.zeros(int(self.request.pauses.chapter_pause_s * self.rate), np.float32)
        spans, sentences, position = [], [], 0
        for c, chapter in enumerate(self.chapters):
            start = position
            for sentence in chapter.sentences:
                record = self._stored(sentence.id)
                length = int(np.load(self._paths(sentence.id)[0], mmap_mode="r").shape[0])
                chosen = record["takes"][record["chosen_take"]]
                sentences.append({
                    "id": sentence.id, "chapter": chapter.number, "text": sentence.text, "status": record["status"],
                    "chapter_start_s": round((position - start) / self.rate, 3),
                    "start_s": round(position / self.rate, 3),
                    "end_s": round((position + length) / self.rate - sentence.pause_after_s, 3),
                    "take": record["chosen_take"], "takes": len(record["takes"]), "seed": chosen["seed"],
                    "scores": chosen["scores"], "redo": record.get("redo", 0),
                    # the engine's record of the chosen take (piper-vc: the guard's, fine-tune check included)
                    "details": chosen.get("details", {}),
                    # a piece of a sentence cut by a pause mark, or a short sentence: how it was judged joined
                    **({"joined": record["joined"]} if record.get("joined") else {}),
                    **({"finetune": record["finetune"]} if record.get("finetune") else {})})
                position += length
            spans.append((chapter.title, start / self.rate, position / self.rate))
            if c < len(self.chapters) - 1:
                position += chapter_pause.size

        def book_audio() -> Iterator[np.ndarray]:
            for c, chapter in enumerate(self.chapters):
                yield from self._chapter_pieces(chapter)
                if c < len(self.chapters) - 1:
                    yield chapter_pause

        fmt = self.request.audio_format
        book_path = self.folder / f"book.{fmt}"
        title = Path(self.request.source).stem
        if fmt == "m4b":
            write_m4b(book_path, book_audio(), self.rate, spans, title=title)
        else:
            with StreamWriter(book_path, self.rate) as writer:
                for piece in book_audio():
                    writer.write(piece)
            atomic_write_text(self.folder / "book.cue", cue_sheet(book_path.name, spans))
        chapters = [{"number": chapter.number, "title": chapter.title,
                     "file": str(self._chapter_path(chapter).relative_to(self.folder)),
                     "start_s": round(start, 3), "end_s": round(end, 3), "sentences": len(chapter.sentences)}
                    for chapter, (_, start, end) in zip(self.chapters, spans)]
        manifest = {
            "voxmith_version": __version__, "kind": "book", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seed": self.seed, **self.settings, "source_path": str(Path(self.request.source).resolve()),
            "output": {"file": book_path.name, "duration_s": round(position / self.rate, 3),
                       "sample_rate_hz": self.rate},
            "chapters": chapters, "sentences": sentences,
            "review": [s["id"] for s in sentences if s["status"] == "review"],
        }
        record = BookManifest.from_json({"schema": BOOK_SCHEMA_VERSION, **manifest})  # written through its type
        atomic_write_json(self.folder / "chapters.json", chapters)
        atomic_write_json(self.folder / "manifest.json", record.to_json())
        return BookResult(self.folder, book_path, record)


def _take_record(take, scores) -> dict:
    """One take of a sentence as its record keeps it (as a speech's sidecar keeps its takes)."""
    record = {"seed": take.seed, "duration_s": round(take.duration_s, 3), "details": take.details,
              "scores": scores.to_dict() if scores else None}
    if take.scores:  # the engine's own (tortoise: CLVP, CVVP)
        record["engine_scores"] = dict(take.scores)
    return record


def _as_started(engine: Engine, settings: Dict[str, object], state: Optional[dict]) -> Dict[str, object]:
    """The engine settings to go on with a book started (book.json: `state`) before the engine had
    some of its settings: those it never recorded and the request does not set are taken at the
    value its sentences were made at (the settings class's EARLIER_VALUES), so the book stays one."""
    recorded = state.get("settings") if isinstance(state, dict) else None
    if not isinstance(recorded, dict) or not isinstance(recorded.get("settings"), dict):
        return dict(settings)
    if (recorded.get("engine") or {}).get("name") != engine.name:
        return dict(settings)  # another engine's book: refused by the settings check
    return {**engine.settings_class.predated(recorded["settings"]), **settings}


def _without_added_defaults(before: dict, now: dict, engine_settings) -> dict:
    """`now` without the engine settings that `before` (a book.json written by an earlier voxmith)
    never recorded and that are at the value its sentences were made at: their EARLIER_VALUES entry,
    else their default (a setting added since, left as it was, changes nothing the engine version
    does not already say; a new engine version is its own key)."""
    recorded, current = before.get("settings"), now.get("settings")
    if not isinstance(recorded, dict) or not isinstance(current, dict):
        return now
    defaults = {f.name: f.default for f in dataclasses.fields(engine_settings)
                if f.default is not dataclasses.MISSING}
    as_made = json.loads(json.dumps({**defaults, **type(engine_settings).EARLIER_VALUES}, default=str))
    kept = {k: v for k, v in current.items() if k in recorded or k not in as_made or v != as_made[k]}
    return {**now, "settings": kept}


def _comparable(settings: dict) -> dict:
    """A book's settings as far as they decide its sentences' audio: the fine-tune by its run and
    step, not by how it was asked for ("latest" then, the step number now, is the same weights).
    The file format and the pause between chapters only decide how the finished sentences are
    joined, so the same folder can give the book in another format without reading it again."""
    settings = {k: v for k, v in settings.items() if k != "format"}
    pauses = settings.get("pauses")
    if isinstance(pauses, dict):
        settings["pauses"] = {k: v for k, v in pauses.items() if k != "chapter_pause_s"}
    voice = settings.get("voice")
    if isinstance(voice, dict) and isinstance(voice.get("name"), str):
        # a book.json written before names had one spelling may spell the voice otherwise: one voice
        settings["voice"] = {**voice, "name": canonical_name(voice["name"])}
    weights = settings.get("finetune")
    if not weights:
        return settings
    run = weights.get("run")
    return {**settings, "finetune": {"run": canonical_name(run) if isinstance(run, str) else run,
                                     "step": weights.get("step")}}


def _finetune_hint(before: Optional[dict], now: Optional[dict]) -> str:
    """Why a book's weights differ from the ones its folder was started with, and how to match them."""
    def named(weights: Optional[dict]) -> str:
        return f"run '{weights['run']}', step {weights['step']}" if weights else "the stock weights"

    # Said for every front end: the choice by name, then the command line's options for it.
    match = f"--run {quote(str(before['run']))} --checkpoint {before['step']}" if before else "--stock"
    return (f"it was read with {named(before)} and would now be read with {named(now)} (the voice's fine-tune "
            f"changed?): choose {named(before)} as the weights to finish it with them (`voxmith book {match}`), "
            "or ")


def _slug(title: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", title.lower())[:6])[:40] or "chapter"

