"""Books made in the background for the HTTP API: a job per `POST /voxmith/books`, its progress
events, status and result, kept in memory by a `BookJobs` registry.

A book takes minutes to hours, so it does not hold a synthesis worker of the pool (that would stall
every speech request behind it): books have their own worker thread, one book at a time, with a
bounded line of books waiting (more are refused, 503). A job is cancelled at its next progress event
(`BookCancelled` raised from the progress callback); the book's folder keeps every finished sentence,
so the same book started again resumes (`voxmith.studio.book`). Stopping the server cancels the
jobs the same way. Jobs are not kept across restarts: the book's files are, in the workspace.

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
from voxmith.serve.pool import PoolClosed, PoolFull
from voxmith.studio.book import BookRequest, BookResult
from voxmith.torch_threads import process_threads

log = logging.getLogger("voxmith.serve")

EVENTS_KEPT = 500  # per job: a client that reads events later gets the last ones (and the status)
JOBS_KEPT = 100  # finished jobs remembered, oldest forgotten first


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
    status: str = "queued"  # queued, running, done, failed, cancelled
    created: float = dataclasses.field(default_factory=time.time)
    started: Optional[float] = None
    finished: Optional[float] = None
    error: Optional[str] = None
    result: Optional[BookResult] = None
    events: List[dict] = dataclasses.field(default_factory=list)  # the last EVENTS_KEPT, each with its "seq"
    next_seq: int = 0
    cancel_requested: threading.Event = dataclasses.field(default_factory=threading.Event)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    @property
    def ended(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

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


class BookJobs:
    """The server's book jobs: `submit` queues one, a worker thread makes them one after another."""

    def __init__(self, make: Callable[[BookJob], BookResult], max_waiting: int = 8):
        self._make, self.max_waiting = make, max_waiting
        self._jobs: "OrderedDict[str, BookJob]" = OrderedDict()
        self._queue: "queue.Queue[Optional[BookJob]]" = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="voxmith-books", daemon=True)
        self._thread.start()

    def submit(self, request: BookRequest, folder: Path, upload: Optional[Path] = None,
               on_end: Optional[Callable[[BookJob], None]] = None, redo: Optional[str] = None) -> BookJob:
        """Queue a book (or, with `redo`, one sentence of it made again); raises PoolFull when too many
        are waiting, PoolClosed when shutting down. `on_end(job)` is called once the job has ended,
        however it ended."""
        with self._lock:
            if self._closed:
                raise PoolClosed("The server is shutting down; no new books are taken.")
            waiting = sum(1 for j in self._jobs.values() if j.status == "queued")
            if waiting >= self.max_waiting:
                raise PoolFull(60)
            job = BookJob(secrets.token_urlsafe(12), request, folder, upload=upload, on_end=on_end, redo=redo)
            self._jobs[job.id] = job
            self._forget_old()
        job.add_event({"type": "book.queued"})
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Optional[BookJob]:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> List[BookJob]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job: BookJob) -> None:
        """Stop the job: at once when it waits, at its next progress event when it runs."""
        job.cancel_requested.set()
        with job.lock:
            if job.status == "queued":
                job._append_event({"type": "book.cancelled"})
                job.status, job.finished = "cancelled", time.time()
                ended_here = True
            else:
                ended_here = False
        if ended_here:
            job.call_on_end()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Refuse new books, cancel every job (finished sentences are kept), wait for the worker."""
        with self._lock:
            self._closed = True
            jobs = list(self._jobs.values())
        for job in jobs:
            if not job.ended:
                self.cancel(job)
        self._queue.put(None)
        self._thread.join(timeout_s)

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
            try:
                with process_threads():  # not the count this thread copied while an enrollment ran
                    result = self._make(job)
            except BookCancelled:
                status, event, error = "cancelled", {"type": "book.cancelled"}, None
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
            job.call_on_end()


__all__ = ["BookCancelled", "BookJob", "BookJobs"]
