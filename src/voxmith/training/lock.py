"""One trainer per training run: a lock file in the run folder that names its holder.

Two trainers on one run (two `train run`, or the web UI's Start and the CLI) would both resume
from a checkpoint, then interleave metrics.csv and prune each other's checkpoints. So a trainer
holds `training/RUN/trainer.lock` while it trains; the file says who holds it (process id, host,
start time, command) so that a second trainer can be refused with a message naming the first.

The lock itself is the kernel's `flock` on that file, not the file's existence: a trainer that
dies (killed, crashed, power cut) releases it with its process, so a stale file is simply taken
over and rewritten. Where `flock` is missing (Windows), the file is created exclusively and a file
whose process is gone on this host counts as stale.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from voxmith.errors import VoxmithError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = "trainer.lock"


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started: str  # local time, ISO 8601
    command: str

    @classmethod
    def this_process(cls) -> "LockHolder":
        return cls(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   shlex.join(sys.argv) if sys.argv and sys.argv[0] else "python")

    def describe(self) -> str:
        return f"process {self.pid} on {self.host}, since {self.started} ({self.command})"


class RunBusy(VoxmithError):
    """Another trainer holds the run."""

    def __init__(self, run_name: str, holder: Optional[LockHolder]):
        self.holder = holder
        who = holder.describe() if holder else "another process"
        super().__init__(f"Run '{run_name}' is already being trained by {who}. Wait for it to finish, or stop "
                         "it (type quit in its terminal, press Ctrl+C there, or Stop in the web UI), then try again.")


def _read_holder(path: Path) -> Optional[LockHolder]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(int(data["pid"]), str(data["host"]), str(data["started"]), str(data["command"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    return True


class TrainerLock:
    """`with TrainerLock(run_folder):` trains; entering raises `RunBusy` if another trainer holds it."""

    def __init__(self, run_folder: Path):
        self.folder = Path(run_folder)
        self.path = self.folder / LOCK_FILE
        self._fd: Optional[int] = None

    def holder(self) -> Optional[LockHolder]:
        """Who holds the run now (None: nobody, or a stale file of a trainer that is gone)."""
        if not self.path.exists():
            return None
        if fcntl is not None:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(self.path) or LockHolder(0, "?", "?", "?")
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
            finally:
                os.close(fd)
        holder = _read_holder(self.path)
        if holder and holder.host == socket.gethostname() and not _pid_alive(holder.pid):
            return None
        return holder

    def acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        holder = LockHolder.this_process()
        payload = (json.dumps(asdict(holder), indent=2) + "\n").encode("utf-8")
        if fcntl is not None:
            self._fd = self._acquire_flock(payload)
        else:  # pragma: no cover - Windows
            self._fd = self._acquire_exclusive(payload)

    def _acquire_flock(self, payload: bytes) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RunBusy(self.folder.name, _read_holder(self.path)) from None
            # The holder before us may have removed the file between our open and our flock: then
            # we locked a file nobody else will ever see. Lock the one at the path instead.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.pwrite(fd, payload, 0)
                return fd
            os.close(fd)

    def _acquire_exclusive(self, payload: bytes) -> int:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is not None:
                    raise RunBusy(self.folder.name, holder) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            os.write(fd, payload)
            return fd
        raise RunBusy(self.folder.name, _read_holder(self.path))

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # before unlocking, so nobody locks a removed file for long
        finally:
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> "TrainerLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
