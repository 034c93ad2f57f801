"""torch's intra-op thread count for one piece of work, without leaking into the rest of the process.

torch keeps one process-wide count: `torch.set_num_threads` stores it and sets the calling thread's
OpenMP team, and a thread copies the stored count on its first torch operation and keeps it. Set in
a worker and left there, it makes the threads a server starts afterwards run on that count: slower,
and with different float sums than the same request on the main thread (reductions split by the
team size).

`torch_threads(n)` runs a body on n threads and, when it ends, puts this thread and the stored count
back to the process's count (read, while no body runs, from what a new thread would get), or to
the enclosing body's count when nested. A thread
whose first operation falls inside another body's window would still copy that body's count: the
long-lived workers (server pools, web UI handlers) run each job under `process_threads()`, which
sets the process's count for that thread. Loading a library that sets the count when imported
(silero_vad) under `process_threads()` keeps it from changing it for the process.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

_lock = threading.Lock()
_local = threading.local()  # .counts: the counts of this thread's open bodies, innermost last
_active = 0
_process_count = 0

T = TypeVar("T")


def new_thread_count() -> int:
    """The count a thread started now gets on its first operation (torch's stored count)."""
    import torch

    seen = []
    probe = threading.Thread(target=lambda: seen.append(torch.get_num_threads()), name="torch-threads-probe")
    probe.start()
    probe.join()
    return seen[0]


def process_count() -> int:
    """The process's intra-op thread count: what a thread started now gets, read while no body runs."""
    with _lock:
        return _process_count if _active else new_thread_count()


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the body with `count` intra-op threads in this thread (see the module's docstring)."""
    import torch  # here, so that importing this module does not import torch

    global _active, _process_count
    with _lock:
        if _active == 0:
            _process_count = new_thread_count()
        _active += 1
        count = max(1, int(count))
        torch.set_num_threads(count)
    counts = _local.__dict__.setdefault("counts", [])
    counts.append(count)
    try:
        yield
    finally:
        counts.pop()
        with _lock:
            _active -= 1
            torch.set_num_threads(counts[-1] if counts else _process_count)


@contextmanager
def process_threads() -> Iterator[None]:
    """Run the body on the process's count, whatever this thread copied when it started."""
    with torch_threads(process_count()):
        yield


def on_torch_threads(count: int, fn: Callable[..., T]) -> Callable[..., T]:
    """`fn` wrapped to run under torch_threads(count): for the tasks given to a worker pool."""
    @functools.wraps(fn)
    def wrapped(*args, **kwargs) -> T:
        with torch_threads(count):
            return fn(*args, **kwargs)
    return wrapped


def active_bodies() -> int:
    """How many torch_threads bodies are running now (tests check for leaks only when none is)."""
    return _active
