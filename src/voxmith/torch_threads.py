"""torch's intra-op thread count for one piece of work, without leaking into the rest of the process.

torch keeps one process-wide count: `torch.set_num_threads` stores it and sets the calling thread's
OpenMP team, and every thread started later copies the stored count on its first operation. Set in
a worker and left there, it makes the threads a server starts afterwards run on that count: slower,
and with different float sums than the same request on the main thread (reductions split by the
team size). `torch_threads` sets the count for the body and puts the stored count back when the last
such body in the process ends; `with torch_threads(torch.get_num_threads())` keeps a library that sets
the count when imported (silero_vad) from changing it for the process.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

_lock = threading.Lock()
_active = 0
_process_count = 0

T = TypeVar("T")


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the body with `count` intra-op threads in this thread (see the module's docstring)."""
    import torch  # here, so that importing this module does not import torch

    global _active, _process_count
    with _lock:
        own = torch.get_num_threads()
        if _active == 0:
            _process_count = own
        _active += 1
        torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            # Another body still running keeps its count stored; this thread gets its own back.
            torch.set_num_threads(_process_count if _active == 0 else own)


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
