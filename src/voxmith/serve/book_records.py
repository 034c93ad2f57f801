"""Book jobs of `voxmith serve` kept across restarts: one JSON record per job in the workspace's
`jobs/books/<id>.json`, and the store that writes, adopts and prunes them.

A `BookJobRecord` is what a job needs to be listed and resumed after the server that ran it has
gone: its id, the book's folder, the request (book file, voice, engine, settings, seed, ranking,
pauses, format, weights), status, times, latest progress and error. Records are written whole and
atomically (`voxmith.fsutil`), so a reader, or a crash, never sees half of one.

Two servers may share a workspace. Each holds a lock of its own for as long as it runs
(`jobs/books/.owners/<owner>.lock`, a kernel lock: the OS lets go of a killed server's) and writes
only the records it owns. A server starting up adopts the records whose owner no longer holds its
lock (a server that stopped or crashed), under a store-wide lock so that two starting at once never
adopt the same job, and leaves the jobs of a server still running to that server. A record that
cannot be read (damaged, or from a newer voxmith) is skipped with a warning, never fatal.

Not here: what a job does (`book_jobs`), or the book's own resumable state, which lives in its
folder (`voxmith.studio.book`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Mapping, Optional

from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_write_json, exclusive_lock
from voxmith.studio.book import BookRequest
from voxmith.studio.ranking import RankingSettings
from voxmith.studio.record import FinetuneChoice
from voxmith.text.book import PauseSettings

log = logging.getLogger("voxmith.serve")

RECORD_KIND = "voxmith.book-job"
RECORD_SCHEMA_VERSION = 1
STATUSES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
# A job found queued or running by a later server was stopped with the server that ran it.
STOPPED_WITH_ITS_SERVER = ("queued", "running")
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # secrets.token_urlsafe's alphabet: a safe file name
OWNER_ID = re.compile(r"[0-9a-f]{16}")


class RecordError(VoxmithError):
    """A job record that cannot be read."""


def request_to_json(request: BookRequest) -> dict:
    return {"source": str(request.source), "voice": request.voice, "refs": [str(r) for r in request.refs],
            "engine": request.engine, "settings": dict(request.settings), "seed": request.seed,
            "candidates": request.candidates, "ranking": dataclasses.asdict(request.ranking), "rank": request.rank,
            "pauses": dataclasses.asdict(request.pauses),
            "output_dir": None if request.output_dir is None else str(request.output_dir),
            "format": request.audio_format, "finetune": dataclasses.asdict(request.finetune)}


def request_from_json(data: Mapping[str, Any]) -> BookRequest:
    """The request as `request_to_json` wrote it (KeyError, TypeError, ValueError or VoxmithError when
    it is not: the caller says which file)."""
    ranking = RankingSettings(**_known(RankingSettings, data["ranking"]))
    pauses = PauseSettings(**_known(PauseSettings, data["pauses"]))
    finetune = FinetuneChoice(**_known(FinetuneChoice, data["finetune"]))
    settings = data["settings"]
    if not isinstance(settings, dict):
        raise TypeError("settings is not an object")
    return BookRequest(
        source=Path(_text(data["source"])), voice=data["voice"], refs=tuple(Path(_text(r)) for r in data["refs"]),
        engine=data["engine"], settings=settings, seed=data["seed"], candidates=int(data["candidates"]),
        ranking=ranking, rank=bool(data["rank"]), pauses=pauses,
        output_dir=None if data["output_dir"] is None else Path(_text(data["output_dir"])),
        audio_format=_text(data["format"]), finetune=finetune)


def _known(kind, values: Any) -> dict:
    if not isinstance(values, dict):
        raise TypeError(f"{kind.__name__} is not an object")
    names = {f.name for f in dataclasses.fields(kind)}
    return {k: v for k, v in values.items() if k in names}


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not text")
    return value


@dataclass(frozen=True)
class BookJobRecord:
    id: str
    status: str  # one of STATUSES
    request: BookRequest
    folder: Path  # the book's folder
    upload: Optional[Path] = None  # the uploaded book, when it came as an upload
    redo: Optional[str] = None  # the sentence a redo job makes again
    created: float = 0.0  # Unix times
    started: Optional[float] = None
    finished: Optional[float] = None
    error: Optional[str] = None
    progress: Optional[dict] = None  # the latest book.progress event, as the API shows it
    next_seq: int = 0  # the job's next event number
    saved: float = 0.0  # when the record was written: about when a server that crashed stopped

    def to_json(self) -> dict:
        return {"kind": RECORD_KIND, "schema": RECORD_SCHEMA_VERSION, "id": self.id, "status": self.status,
                "folder": str(self.folder), "upload": None if self.upload is None else str(self.upload),
                "redo": self.redo, "created": self.created, "started": self.started, "finished": self.finished,
                "error": self.error, "progress": self.progress, "next_seq": self.next_seq, "saved": self.saved,
                "request": request_to_json(self.request)}

    @classmethod
    def from_json(cls, data: Any, where: str) -> "BookJobRecord":
        if not isinstance(data, dict) or data.get("kind") != RECORD_KIND:
            raise RecordError(f"{where} is not a book job record.")
        if not isinstance(data.get("schema"), int) or data["schema"] > RECORD_SCHEMA_VERSION:
            raise RecordError(f"{where} was written by a newer voxmith (record schema {data.get('schema')}).")
        try:
            if data["status"] not in STATUSES or not JOB_ID.fullmatch(_text(data["id"])):
                raise ValueError(f"status {data['status']!r}, id {data['id']!r}")
            progress = data.get("progress")
            if not (isinstance(progress, dict) and progress.get("type") == "book.progress"
                    and isinstance(progress.get("seq"), int)):
                progress = None  # (the progress shown is a convenience: a damaged one is dropped)
            return cls(
                id=data["id"], status=data["status"], request=request_from_json(data["request"]),
                folder=Path(_text(data["folder"])),
                upload=None if data.get("upload") is None else Path(_text(data["upload"])),
                redo=None if data.get("redo") is None else _text(data["redo"]),
                created=float(data["created"]), started=_time(data.get("started")),
                finished=_time(data.get("finished")),
                error=None if data.get("error") is None else _text(data["error"]),
                progress=progress,
                next_seq=int(data.get("next_seq", 0)), saved=float(data.get("saved", data["created"])))
        except (KeyError, TypeError, ValueError, VoxmithError) as err:
            raise RecordError(f"{where} is damaged ({type(err).__name__}: {err}).") from None

    def after_restart(self) -> "BookJobRecord":
        """The record as a server that did not run the job shows it: a job that was waiting or being
        read when its server stopped is "interrupted" (its book's folder keeps every finished
        sentence; resuming it reads only the rest), ended when its record was last written."""
        if self.status not in STOPPED_WITH_ITS_SERVER:
            return self
        return dataclasses.replace(self, status="interrupted", finished=self.saved)


def _time(value: Any) -> Optional[float]:
    return None if value is None else float(value)


class BookJobStore:
    """The records of one server's book jobs, in `folder` (the workspace's jobs/books/).

    `adopt()` once at start; `save` and `remove` from any thread; `close()` when the server stops.
    Nothing here raises into a job or the server: a record that cannot be written is logged, and a
    folder that cannot be made turns the store off (jobs are then kept in memory only).
    `books_root`: where every job's book folder is (the workspace's results/); a record naming a
    folder elsewhere is skipped, so a damaged one never has the API serve files from outside it."""

    def __init__(self, folder: Path, books_root: Optional[Path] = None):
        self.folder = Path(folder)
        self.books_root = None if books_root is None else Path(books_root).resolve()
        self.owner = secrets.token_hex(8)
        self._held = contextlib.ExitStack()
        self.enabled = True
        try:
            self._owners.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            log.warning("book jobs will not be kept across restarts: cannot make '%s' (%s)", self._owners,
                        err.strerror or err)
            self.enabled = False
            return
        self._held.enter_context(exclusive_lock(self._owner_lock(self.owner), wait=False))

    @property
    def _owners(self) -> Path:
        return self.folder / ".owners"

    def _owner_lock(self, owner: str) -> Path:
        return self._owners / f"{owner}.lock"

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def adopt(self) -> List[BookJobRecord]:
        """The records no running server owns (their servers stopped or crashed), oldest first, made
        this server's: each rewritten as `after_restart` shows it, with this server as its owner."""
        if not self.enabled:
            return []
        adopted: List[BookJobRecord] = []
        try:
            self._adopt(adopted)
        except (OSError, VoxmithError) as err:  # the folder unreadable, the lock held for too long
            log.warning("the book jobs of earlier servers could not all be read from '%s' (%s)", self.folder, err)
        return sorted(adopted, key=lambda r: r.created)

    def _adopt(self, adopted: List[BookJobRecord]) -> None:
        with exclusive_lock(self.folder / ".adopt.lock"):
            dead = self._dead_owners()
            for path in sorted(self.folder.glob("*.json")):
                if path.name.startswith("."):  # a write a crash cut short (fsutil's hidden temporary file)
                    continue
                record = self._read(path, dead)
                if record is not None:
                    record = record.after_restart()
                    self.save(record)
                    adopted.append(record)
            for owner in dead:  # their records are this server's now
                self._owner_lock(owner).unlink(missing_ok=True)

    def _dead_owners(self) -> set:
        dead = set()
        for lock in self._owners.glob("*.lock"):
            owner = lock.stem
            if owner != self.owner and OWNER_ID.fullmatch(owner) and not self._alive(owner):
                dead.add(owner)
        return dead

    def _alive(self, owner: str) -> bool:
        with exclusive_lock(self._owner_lock(owner), wait=False) as free:
            return not free

    def _read(self, path: Path, dead: set) -> Optional[BookJobRecord]:
        """The record in `path` if it is this store's to adopt; None (with a warning when damaged)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
            log.warning("skipping the book job record '%s': it cannot be read (%s)", path, err)
            return None
        owner = data.get("owner") if isinstance(data, dict) else None
        if isinstance(owner, str) and owner != self.owner and owner not in dead and OWNER_ID.fullmatch(owner):
            if self._alive(owner):
                return None  # a job of another server that is running now: that server lists it
            dead.add(owner)  # (its lock file was just made by asking: removed with the others)
        try:
            record = BookJobRecord.from_json(data, f"The book job record '{path}'")
        except RecordError as err:
            log.warning("skipping a book job record: %s", err)
            return None
        if path.stem != record.id:
            log.warning("skipping the book job record '%s': it holds job '%s'", path, record.id)
            return None
        if self.books_root is not None and not record.folder.resolve().is_relative_to(self.books_root):
            log.warning("skipping the book job record '%s': its book's folder '%s' is outside '%s'", path,
                        record.folder, self.books_root)
            return None
        output = record.request.output_dir
        if output is not None and Path(output).resolve() != record.folder.resolve():
            # a resume writes where the request says: only into the book's own (checked) folder
            log.warning("skipping the book job record '%s': it would write the book to '%s', not its folder '%s'",
                        path, output, record.folder)
            return None
        return record

    def save(self, record: BookJobRecord) -> None:
        """Write `record` (whole, atomically) as this server's; a failure is logged, not raised."""
        if not self.enabled:
            return
        try:
            atomic_write_json(self._path(record.id), {**record.to_json(), "saved": time.time(), "owner": self.owner})
        except OSError as err:
            log.warning("book job %s: its record could not be written (%s); it will not be listed after a "
                        "restart unless a later write succeeds", record.id, err.strerror or err)

    def remove(self, job_id: str) -> None:
        if not self.enabled:
            return
        try:
            self._path(job_id).unlink(missing_ok=True)
        except OSError as err:
            log.warning("book job %s: its record could not be removed (%s)", job_id, err.strerror or err)

    def close(self) -> None:
        """Write no more, and let go of this server's lock: a later server adopts its records (a book
        still running in this process, past the shutdown's wait, no longer writes over them)."""
        enabled, self.enabled = self.enabled, False
        self._held.close()
        if enabled:
            self._owner_lock(self.owner).unlink(missing_ok=True)


__all__ = ["BookJobRecord", "BookJobStore", "RecordError", "STATUSES", "request_from_json", "request_to_json"]
