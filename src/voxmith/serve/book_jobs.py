"""Books made in the background for the HTTP API: a job per `POST /voxmith/books`, its progress
events, status and result, kept by a `BookJobs` registry in memory and, as records, in the
workspace (`book_records`), so that a restarted server lists its jobs again.

A book takes minutes to hours, so it does not hold a synthesis worker of the pool (that would stall
every speech request behind it): books have their own worker thread, one book at a time, with a
bounded line of books waiting (more are refused, 503). A job is cancelled at its next progress event
(`BookCancelled` raised from the progress callback); the book's folder keeps every finished sentence,
so the same book started again resumes (`voxmith.studio.book`), and so does `resume` of the job.
Stopping the server stops the jobs the same way, as "interrupted".

Each job's record is written when it is submitted, whenever its status changes, and while it runs
at most every PROGRESS_SAVE_S with its latest progress (not on every event: a sentence can report
several). A server starting adopts the records of servers that are gone: their finished, failed and
cancelled jobs show as they ended, and those that were waiting or running as "interrupted" (with
the progress last written); none is started again until a client asks (`resume`).

Job state is written by the worker thread and read by the event loop's, under the job's lock.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, List, Optional

from voxmith.errors import VoxmithError
from voxmith.progress import Progress
from voxmith.serve.book_records import BookJobRecord, BookJobStore
from voxmith.serve.pool import PoolClosed, PoolFull
from voxmith.studio.book import BookRequest, BookResult, load_book
from voxmith.torch_threads import process_threads

log = logging.getLogger("voxmith.serve")

EVENTS_KEPT = 500  # per job: a client that reads events later gets the last ones (and the status)
JOBS_KEPT = 100  # jobs remembered (in memory and as records); the oldest ended ones are forgotten first
PROGRESS_SAVE_S = 5.0  # a running job's record is rewritten with its progress at most this often
# Event numbers of an adopted job continue this far above the last one its record holds: the server
# that ran it may have sent a client later ones before it stopped (its record is written at most
# every PROGRESS_SAVE_S, and a book reports a few events a second at most).
SEQ_GAP_AFTER_RESTART = 1000
ENDED = ("done", "failed", "cancelled", "interrupted")
RESUMABLE = ("interrupted", "cancelled", "failed")  # `resume` reads what is left of these


class BookCancelled(VoxmithError):
    """Raised into a running book (from its progress callback) when its job is cancelled."""


@dataclasses.dataclass
class BookJob:
    id: str
    request: BookRequest
    folder: Path  # where the book is made
    upload: Optional[Path] = None  # the uploaded book, when it came as an upload
    redo: Optional[str] = None  # a sentence id: the job makes that sentence of the finished book again
    # called once when the job has ended (from the worker thread, or the one that cancelled it queued)
    on_end: Optional[Callable[["BookJob"], None]] = None
    status: str = "queued"  # queued, running, done, failed, cancelled, interrupted (stopped with its server)
    created: float = dataclasses.field(default_factory=time.time)
    started: Optional[float] = None
    finished: Optional[float] = None
    error: Optional[str] = None
    result: Optional[BookResult] = None
    events: List[dict] = dataclasses.field(default_factory=list)  # the last EVENTS_KEPT, each with its "seq"
    next_seq: int = 0
    cancel_requested: threading.Event = dataclasses.field(default_factory=threading.Event)
    stop_status: str = "cancelled"  # what a stop (cancel_requested) ends it as: "interrupted" at shutdown
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    store: Optional[BookJobStore] = None  # where its record is kept (None: in memory only)
    # Held while a record is taken and written, so that two threads' writes land in the order taken.
    save_lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    last_saved: float = 0.0  # time.monotonic() of the last write

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @classmethod
    def from_record(cls, record: BookJobRecord, store: Optional[BookJobStore] = None) -> "BookJob":
        """A job of an earlier server as its record left it; a finished book's result is read from its
        folder (None when the folder no longer holds it)."""
        job = cls(record.id, record.request, record.folder, upload=record.upload, redo=record.redo,
                  status=record.status, created=record.created, started=record.started, finished=record.finished,
                  error=record.error, next_seq=record.next_seq + SEQ_GAP_AFTER_RESTART, store=store)
        if record.progress is not None:
            job.events.append(record.progress)
        if job.ended:  # a client reading its events gets its end, and the stream closes
            job._append_event({"type": f"book.{job.status}", **({"error": job.error} if job.error else {})})
        if job.status == "done":
            try:
                job.result = load_book(job.folder)
            except Exception as err:  # damaged or gone: the job is listed without its files
                log.warning("book job %s: its book's manifest cannot be read (%s: %s)", job.id,
                            type(err).__name__, err)
        return job

    def record(self) -> BookJobRecord:
        with self.lock:
            progress = next((e for e in reversed(self.events) if e["type"] == "book.progress"), None)
            return BookJobRecord(self.id, self.status, self.request, self.folder, upload=self.upload, redo=self.redo,
                                 created=self.created, started=self.started, finished=self.finished, error=self.error,
                                 progress=progress, next_seq=self.next_seq)

    def save(self) -> None:
        """Write the job's record now (nothing without a store; a failure is logged by the store)."""
        if self.store is None:
            return
        with self.save_lock:
            self.store.save(self.record())
            self.last_saved = time.monotonic()

    def add_event(self, event: dict) -> None:
        with self.lock:
            self._append_event(event)

    def end(self, status: str, event: dict, error: Optional[str] = None) -> None:
        """Mark the job ended and add its last event in one step, under the lock: a reader that sees
        the job ended always finds that event (an event stream closes once the job has ended)."""
        with self.lock:
            self._append_event(event)
            self.status, self.error, self.finished = status, error, time.time()

    def call_on_end(self) -> None:
        if self.on_end is not None:
            try:
                self.on_end(self)
            except Exception:  # never let it stop the worker thread
                log.exception("book job %s: cleaning up after it failed", self.id)

    def _append_event(self, event: dict) -> None:  # the caller holds self.lock
        self.events.append({"seq": self.next_seq, **event})
        self.next_seq += 1
        del self.events[:-EVENTS_KEPT]

    def events_after(self, seq: int) -> List[dict]:
        """The kept events numbered above `seq` (-1: all kept)."""
        with self.lock:
            return [e for e in self.events if e["seq"] > seq]

    def progress(self, event: Progress) -> None:
        """The book's progress callback: one event per report; raises once the job is cancelled."""
        if self.cancel_requested.is_set():
            raise BookCancelled("The book job was cancelled; its finished sentences are kept (start it again "
                                "to resume).")
        self.add_event({"type": "book.progress", "stage": event.stage, "done": event.done, "total": event.total,
                        "detail": event.detail, "unit": event.unit})
        if self.store is not None and time.monotonic() - self.last_saved >= PROGRESS_SAVE_S:
            self.save()


class BookJobs:
    """The server's book jobs: `submit` queues one, a worker thread makes them one after another.
    With a `store`, the jobs of earlier servers are adopted (listed, none started) and every job's
    record is kept there."""

    def __init__(self, make: Callable[[BookJob], BookResult], max_waiting: int = 8,
                 store: Optional[BookJobStore] = None):
        self._make, self.max_waiting, self._store = make, max_waiting, store
        self._jobs: "OrderedDict[str, BookJob]" = OrderedDict()
        self._queue: "queue.Queue[Optional[BookJob]]" = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        if store is not None:
            for record in store.adopt():
                self._jobs[record.id] = BookJob.from_record(record, store)
            self._forget_old()
        self._thread = threading.Thread(target=self._work, name="voxmith-books", daemon=True)
        self._thread.start()

    def _admit(self) -> None:
        """Raise PoolClosed when shutting down, PoolFull when too many jobs wait (under self._lock)."""
        if self._closed:
            raise PoolClosed("The server is shutting down; no new books are taken.")
        waiting = sum(1 for j in self._jobs.values() if j.status == "queued")
        if waiting >= self.max_waiting:
            raise PoolFull(60)

    def submit(self, request: BookRequest, folder: Path, upload: Optional[Path] = None,
               on_end: Optional[Callable[[BookJob], None]] = None, redo: Optional[str] = None) -> BookJob:
        """Queue a book (or, with `redo`, one sentence of it made again); raises PoolFull when too many
        are waiting, PoolClosed when shutting down. `on_end(job)` is called once the job has ended,
        however it ended."""
        with self._lock:
            self._admit()
            job = BookJob(secrets.token_urlsafe(12), request, folder, upload=upload, on_end=on_end, redo=redo,
                          store=self._store)
            self._jobs[job.id] = job
            self._forget_old()
        job.add_event({"type": "book.queued"})
        job.save()
        self._queue.put(job)
        return job

    def resume(self, job: BookJob) -> bool:
        """Queue an interrupted, cancelled or failed job again, under its id: its book's folder keeps
        every finished sentence, so only the rest is read (a redo job makes its sentence again).
        False when the job is not one of those (waiting, running or done); raises PoolFull or
        PoolClosed as `submit` does. Whether the book's file is still there is the caller's to check."""
        with self._lock:
            self._admit()
            with job.lock:
                if job.status not in RESUMABLE:
                    return False
                job.cancel_requested.clear()
                job.stop_status = "cancelled"
                job.status, job.started, job.finished, job.error, job.result = "queued", None, None, None, None
                job.on_end = None  # what it held (an upload) was let go when it ended
                job._append_event({"type": "book.queued", "resumed": True})
        job.save()
        self._queue.put(job)
        return True

    def get(self, job_id: str) -> Optional[BookJob]:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> List[BookJob]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job: BookJob) -> None:
        """Stop the job: at once when it waits, at its next progress event when it runs."""
        self._stop(job, "cancelled")

    def _stop(self, job: BookJob, status: str) -> None:
        """End the job as `status` (cancelled, or interrupted by the server stopping)."""
        with job.lock:
            if not job.cancel_requested.is_set():  # a job already cancelled stays cancelled
                job.stop_status = status
            job.cancel_requested.set()
            if job.status == "queued":
                job._append_event({"type": f"book.{job.stop_status}"})
                job.status, job.finished = job.stop_status, time.time()
                ended_here = True
            else:
                ended_here = False
        if ended_here:
            job.save()
            job.call_on_end()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Refuse new books, stop every job as "interrupted" (finished sentences are kept; a later
        server lists the job, to resume), wait for the worker, let go of the records."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            if not job.ended:
                self._stop(job, "interrupted")
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._store is not None:  # a book still running past the timeout stays "running" in its record:
            self._store.close()      # the next server shows it interrupted

    def _refresh_results(self, folder: Path, result: BookResult) -> None:
        """After a redo, the other finished jobs of the same book show the book as it is now (their
        files are the folder's, so their review list must be too)."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.folder == folder and j.result is not None]
        for other in jobs:
            with other.lock:
                other.result = result

    def _forget_old(self) -> None:
        ended = [job_id for job_id, job in self._jobs.items() if job.ended]
        for job_id in ended[:max(0, len(self._jobs) - JOBS_KEPT)]:
            del self._jobs[job_id]
            if self._store is not None:
                self._store.remove(job_id)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with job.lock:
                if job.status != "queued":  # cancelled while waiting
                    continue
                job.status, job.started = "running", time.time()
            job.add_event({"type": "book.started"})
            job.save()
            try:
                with process_threads():  # not the count this thread copied while an enrollment ran
                    result = self._make(job)
            except BookCancelled:
                status, error = job.stop_status, None
                event = {"type": f"book.{status}"}
            except VoxmithError as err:
                status, error = "failed", str(err)
                event = {"type": "book.failed", "error": error}
            except Exception as err:  # a bug: said to the client, not lost in a thread
                log.exception("book job %s failed", job.id)
                status, error = "failed", f"Unexpected {type(err).__name__}: {err}. This is a bug in voxmith."
                event = {"type": "book.failed", "error": error}
            else:
                status, event, error = "done", {"type": "book.done"}, None
                job.result = result
                if job.redo:
                    self._refresh_results(job.folder, result)
            job.end(status, event, error)
            job.save()
            job.call_on_end()


__all__ = ["BookCancelled", "BookJob", "BookJobs"]
