"""A bounded pool of synthesis threads between the HTTP server's event loop and the studio.

A job is a generator run in a worker thread; each item it yields reaches the asyncio side through
`Job.next()`. The pool holds at most `workers` running jobs plus `max_waiting` queued ones: a full
pool refuses new jobs at once (`PoolFull`, answered 503 with Retry-After) instead of letting a
burst pile up requests, memory and latency. A cancelled job (its client went away) stops at its
generator's next item; the generator is closed, so its `finally`/`with` blocks run.

Jobs run at the same time, up to `workers`, whatever their engine: engines are not changed by a
request (fine-tuned weights are a separate engine object, see `voxmith.engines.base`), and an
engine whose maths uses process-wide state serialises that part itself, so each result is exactly
what the same request makes alone (tests/test_serve.py checks it with concurrent requests).
"""

from __future__ import annotations

import asyncio
import math
import os
import queue
import threading
import time
from typing import Any, Callable, Generator, Optional

from voxmith.errors import VoxmithError
from voxmith.torch_threads import process_threads

_DONE = object()


class PoolFull(VoxmithError):
    """Every worker is busy and the waiting line is full."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"The server is busy (every synthesis worker is taken and the queue is full); "
                         f"retry in about {retry_after_s} s.")
        self.retry_after_s = retry_after_s


class PoolClosed(VoxmithError):
    """The server is shutting down."""


def default_workers() -> int:
    """One worker per two cores (synthesis uses several threads itself), at most one per 3 GB of
    memory (a loaded engine and its buffers), at least one."""
    cores = os.cpu_count() or 1
    try:
        memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    except (ValueError, OSError, AttributeError):
        memory_gb = 8.0
    return max(1, min(cores // 2, int(memory_gb // 3), 8))


class Job:
    """One queued or running job; read its items with `await job.next()` on the event loop."""

    def __init__(self, make: Callable[["Job"], Generator[Any, None, None]], loop: asyncio.AbstractEventLoop):
        self._make, self._loop = make, loop
        self._items: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.started_at: Optional[float] = None

    def cancel(self) -> None:
        """Stop the job at its next item (or before it starts)."""
        self.cancelled.set()

    async def next(self) -> Any:
        """The next item; raises the job's exception; `StopAsyncIteration` at the end."""
        item = await self._items.get()
        if item is _DONE:
            self._items.put_nowait(_DONE)  # later calls see the end too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._items.put_nowait(_DONE)
            raise item
        return item

    def _put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._items.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server stopped): nobody is listening
            self.cancelled.set()

    def _run(self) -> None:
        self.started_at = time.monotonic()
        if self.cancelled.is_set():
            self._put(_DONE)
            return
        items = None
        try:
            items = self._make(self)
            for item in items:
                self._put(item)
                if self.cancelled.is_set():
                    break
        except BaseException as err:  # delivered to the request, which turns it into a response
            self._put(err)
        finally:
            if items is not None:
                items.close()
            self._put(_DONE)


class SynthesisPool:
    def __init__(self, workers: int, max_waiting: int):
        if workers < 1:
            raise VoxmithError("--workers must be at least 1.")
        self.workers, self.max_waiting = workers, max(0, max_waiting)
        self._queue: "queue.Queue[Optional[Job]]" = queue.Queue()
        self._lock = threading.Lock()
        self._active = 0  # queued + running
        self._closed = False
        self._job_seconds = 5.0  # running mean of a job's duration, for Retry-After
        self._threads = [threading.Thread(target=self._work, name=f"voxmith-synthesis-{i}", daemon=True)
                         for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @property
    def active(self) -> int:
        return self._active

    def submit(self, make: Callable[[Job], Generator[Any, None, None]]) -> Job:
        """Queue a job (call on the event loop). Raises `PoolFull` or `PoolClosed`."""
        with self._lock:
            if self._closed:
                raise PoolClosed("The server is shutting down; no new requests are taken.")
            if self._active >= self.workers + self.max_waiting:
                waves = math.ceil((self._active + 1) / self.workers)
                raise PoolFull(max(1, math.ceil(self._job_seconds * waves)))
            self._active += 1
        job = Job(make, asyncio.get_running_loop())
        self._queue.put(job)
        return job

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            started = time.monotonic()
            try:
                with process_threads():  # not the count this thread copied while an enrollment ran
                    job._run()
            finally:
                with self._lock:
                    self._active -= 1
                    self._job_seconds = 0.8 * self._job_seconds + 0.2 * (time.monotonic() - started)

    def shutdown(self, wait: bool = True, timeout_s: Optional[float] = None) -> None:
        """Refuse new jobs; let queued and running ones finish (with `wait`)."""
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            for thread in self._threads:
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
