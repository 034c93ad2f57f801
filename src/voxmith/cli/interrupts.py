"""Ctrl-C that is never lost.

Python raises KeyboardInterrupt in whatever Python code runs when Ctrl-C arrives. When that code is
a callback called from C (llvmlite's, while numba compiles a function for the first sentence of a
run: seconds in which a user naturally presses Ctrl-C), Python cannot pass the exception through the
C code: it prints "Exception ignored ... Traceback ... KeyboardInterrupt" and drops it, and the
command went on as if nothing had been pressed. Here such a dropped KeyboardInterrupt is remembered
(through `sys.unraisablehook`) instead of printed, and `raise_if_lost()` raises it again; the CLI's
progress callback calls it, so the interrupt lands at the next progress event (a sentence, a step)
and the command stops as Ctrl-C promises (what is finished is kept, exit code 130); one dropped after
the last progress event is raised when the command's body returns (voxmith.cli.main.FriendlyGroup).
"""

from __future__ import annotations

import sys
import threading

_lost = threading.Event()


def _hook(unraisable) -> None:
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _lost.set()
        return
    _hook.previous(unraisable)


def install() -> None:
    """Remember dropped KeyboardInterrupts from now on (once per process; other unraisable
    exceptions are reported as before). A command starts with none pending."""
    _lost.clear()
    if sys.unraisablehook is not _hook:
        _hook.previous = sys.unraisablehook
        sys.unraisablehook = _hook


def raise_if_lost() -> None:
    """Raise the KeyboardInterrupt that a callback from C dropped, if any (in the main thread only:
    that is where Ctrl-C is meant to stop the command)."""
    if _lost.is_set() and threading.current_thread() is threading.main_thread():
        _lost.clear()
        raise KeyboardInterrupt
