"""Ending the process at once, without the interpreter's teardown (freeing every module and object).

Two callers need it: a torchrun training worker, whose DDP gloo threads can abort a shutting-down
interpreter (training/distributed.py), and `voxmith serve` after its drain, where the teardown of
every loaded model is seconds of CPU for nothing (cli/commands_serve.py).
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def exit_now(status: int) -> NoReturn:
    """Flush the standard streams and end the process with `status`, skipping the teardown. The
    caller has closed its own files (exit handlers are not run here)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    os._exit(status)


__all__ = ["exit_now"]
