"""The book job registry of `voxmith serve` on its own (no server, no synthesis): a scripted `make`
stands in for the book, so what is under test is how a job's status and events change together."""

from __future__ import annotations

import threading
import time

import pytest

from voxmith.errors import VoxmithError
from voxmith.serve.book_jobs import BookCancelled, BookJobs
from voxmith.studio.book import BookRequest

LAST_EVENTS = {"done": "book.done", "failed": "book.failed", "cancelled": "book.cancelled"}


class CheckedLock:
    """A job's lock that checks, each time it is let go, what a reader could then see: a job that has
    ended already holds its last event (an event stream closes as soon as it sees the job ended)."""

    def __init__(self, job):
        self._lock, self.job, self.broken = threading.Lock(), job, []

    def __enter__(self):
        self._lock.acquire()

    def __exit__(self, *exc):
        job = self.job
        if job.ended and (not job.events or job.events[-1]["type"] != LAST_EVENTS[job.status]):
            self.broken.append((job.status, [e["type"] for e in job.events]))
        self._lock.release()


def _wait(condition, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


@pytest.mark.parametrize("outcome", ["done", "failed", "cancelled"])
def test_a_job_ends_together_with_its_last_event(tmp_path, outcome):
    go, entered = threading.Event(), threading.Event()

    def make(job):
        entered.set()
        go.wait(10)
        if outcome == "failed":
            raise VoxmithError("no such voice")
        if outcome == "cancelled":
            raise BookCancelled("cancelled")
        return "a result"

    jobs = BookJobs(make)
    try:
        first = jobs.submit(BookRequest(source=tmp_path / "a.txt", voice="v"), tmp_path / "a-book")
        entered.wait(10)  # the worker is inside make: nothing holds the job's lock now
        first.lock = checked = CheckedLock(first)
        # a second job waits behind the first and is cancelled while it waits
        second = jobs.submit(BookRequest(source=tmp_path / "b.txt", voice="v"), tmp_path / "b-book")
        second.lock = checked_second = CheckedLock(second)
        jobs.cancel(second)
        go.set()
        _wait(lambda: first.ended)
        assert first.status == outcome and first.events[-1]["type"] == LAST_EVENTS[outcome]
        assert second.status == "cancelled" and [e["type"] for e in second.events] == ["book.queued", "book.cancelled"]
        assert checked.broken == [] and checked_second.broken == []
    finally:
        jobs.shutdown(5)
