"""Commands to a running training loop ("save", "eval", "quit") and a stdin reader for the CLI.

The loop takes its commands from a `queue.Queue` or a callable, so a web UI can feed it button
presses and a CLI can feed it typed lines through `stdin_commands`. Under torchrun only rank 0
listens: its decision is broadcast, so every process does the same thing at the same step.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from typing import Callable, Iterable, Optional, TextIO, Union

from voxmith.progress import ProgressCallback, report

COMMANDS = ("save", "eval", "quit")
CommandSource = Union["queue.Queue[str]", Callable[[], Iterable[str]], None]


def drain(commands: CommandSource, progress: Optional[ProgressCallback], step: int, total: int) -> set[str]:
    """All commands waiting now, lower-cased; unknown ones are reported and dropped."""
    if commands is None:
        return set()
    if hasattr(commands, "get_nowait"):
        raw = []
        while True:
            try:
                raw.append(commands.get_nowait())
            except queue.Empty:
                break
    else:
        raw = list(commands() or [])
    wanted = set()
    for command in raw:
        word = str(command).strip().lower()
        if word in COMMANDS:
            wanted.add(word)
        elif word:
            report(progress, "training", step, total,
                   detail=f"unknown command '{word}'; use {', '.join(COMMANDS)}")
    return wanted


def is_main_process() -> bool:
    """True unless this is one of torchrun's processes other than rank 0 (which alone talks to
    the user: it reads commands, reports progress and writes the run's files)."""
    return os.environ.get("RANK", "0").strip() in ("", "0")


def stdin_commands(stream: Optional[TextIO] = None) -> "queue.Queue[str]":
    """A queue that receives each line typed on `stream` (default stdin), for `train_loop(commands=)`.

    A daemon thread reads the lines, so it never keeps the program alive and never blocks training.
    End of input (stdin from /dev/null, a closed pipe, a detached terminal) just ends the thread.
    Only rank 0 reads: torchrun's processes share one terminal, and two readers would split the
    lines between them; the other ranks get a queue that stays empty (rank 0 decides for all).
    """
    lines: queue.Queue[str] = queue.Queue()
    if not is_main_process():
        return lines
    source = stream if stream is not None else sys.stdin
    if source is None:  # e.g. pythonw, or a service started without a stdin
        return lines

    def read() -> None:
        try:
            for line in source:
                lines.put(line.strip())
        except (OSError, ValueError):  # the stream was closed under us: nothing more to read
            pass

    threading.Thread(target=read, name="voxmith-training-commands", daemon=True).start()
    return lines
