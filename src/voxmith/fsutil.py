"""File-system helpers: atomic writes (a reader, or a crash, never sees a half-written file),
content fingerprints of files (`fingerprint_files`), which caches use as keys, and an exclusive lock
shared by threads and processes (`exclusive_lock`).

Everything is written to a temporary file in the destination folder and moved into place with
`os.replace`, which is atomic on POSIX and Windows when both paths are on one file system.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import filelock

from voxmith.errors import VoxmithError


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; move it into place if the block succeeds.

    The temporary file keeps the destination's suffix (or `suffix`) so that writers which pick a
    format from the extension (soundfile, numpy) behave as they would for the real name.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{destination.name}.", suffix=(suffix or destination.suffix) + ".part",
        dir=destination.parent,
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp's ".part" tail would confuse extension-sniffing writers: hand out a clean name.
    clean_tmp = tmp.with_name(tmp.name[: -len(".part")])
    tmp.rename(clean_tmp)
    try:
        yield clean_tmp
        os.replace(clean_tmp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            clean_tmp.unlink()
        raise


def atomic_write_bytes(destination: str | os.PathLike, data: bytes) -> None:
    with atomic_path(destination) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(destination: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(destination, text.encode("utf-8"))


def atomic_write_json(destination: str | os.PathLike, data: Any) -> None:
    atomic_write_text(destination, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def reserve_file(path: str | os.PathLike) -> bool:
    """Create `path` as an empty file unless something is there already; True if this call made it.

    O_EXCL makes the check and the creation one step, so two processes (or threads) choosing a
    name at the same moment never both get it. The writer later replaces the empty file atomically.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def release_reserved(path: str | os.PathLike) -> None:
    """Remove a file made by `reserve_file` if it is still the empty placeholder."""
    with contextlib.suppress(FileNotFoundError):
        if os.stat(path).st_size == 0:
            os.unlink(path)


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file, or return `default` when it does not exist."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def read_json_object(path: str | os.PathLike, default: Any = None) -> Any:
    """A JSON object (dict) from `path`, or `default` when the file does not exist (or holds null).
    A file edited by hand into something else raises ValueError saying what is wrong (not JSON, not
    UTF-8, unreadable, or a JSON list/number...), for the caller to name the file and the way out."""
    try:
        data = read_json(path, default)
    except (ValueError, OSError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(str(err)) from err
    if data is None:
        return default
    if not isinstance(data, dict):
        raise ValueError(f"it holds a JSON {type(data).__name__}, not an object")
    return data


# Content digests of files already hashed in this process, keyed by (path, size, mtime): a long
# voice is hashed once, not on every lookup.
_digest_memo: Dict[tuple, bytes] = {}


def file_digest(path: Path) -> bytes:
    """SHA-256 of a file's bytes, remembered for this process while its size and mtime stay."""
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _digest_memo.get(memo_key)
    if digest is None:
        inner = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                inner.update(block)
        digest = _digest_memo[memo_key] = inner.digest()
    return digest


def fingerprint_files(paths: list[Path]) -> str:
    """SHA-256 over the names and contents of `paths` (order-independent)."""
    outer = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        outer.update(path.name.encode("utf-8") + b"\0" + file_digest(path))
    return outer.hexdigest()


# Waiting for a lock: in steps, so the waiter can report progress (and be cancelled through it), and
# not forever. A held kernel lock means a live holder (a killed one's is released by the OS), busy
# with the same work: an enrollment or a check takes minutes at most, even on a loaded CPU. Past the
# limit the holder is most likely stuck (a stopped process, a hung device), and computing beside it
# would double the load of a machine already too slow, so the waiter stops with an error naming
# the lock file instead.
LOCK_WAIT_STEP_S = 1.0
LOCK_WAIT_LIMIT_S = 15 * 60.0


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, wait: bool = True, waiting: Optional[Callable[[float], None]] = None,
                   limit_s: float = LOCK_WAIT_LIMIT_S) -> Iterator[bool]:
    """Hold an exclusive lock named by `path` against every other thread and process that asks for
    it (a kernel lock through the filelock package: a killed holder's lock is released by the OS);
    yields True while held. With `wait=False` it yields False at once when someone else holds it.
    While it waits, `waiting(seconds_waited)` is called about every LOCK_WAIT_STEP_S (it may raise
    to give up); after `limit_s` it raises VoxmithError naming the lock file. Where the lock file
    cannot be made (a read-only folder), or the file system has no locks, it yields True without
    locking: nothing can be written there for the lock to protect, or nothing to lock with."""
    lock = filelock.FileLock(os.fspath(path))
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if not wait:
            lock.acquire(timeout=0)
        else:
            _acquire_waiting(lock, Path(path), waiting, limit_s)
    except filelock.Timeout:
        yield False
        return
    except (OSError, NotImplementedError):  # filelock raises NotImplementedError where it cannot lock
        yield True
        return
    try:
        yield True
    finally:
        lock.release()


def _acquire_waiting(lock: filelock.FileLock, path: Path, waiting: Optional[Callable[[float], None]],
                     limit_s: float) -> None:
    started = time.monotonic()
    while True:
        try:
            lock.acquire(timeout=LOCK_WAIT_STEP_S)
            return
        except filelock.Timeout:
            waited = time.monotonic() - started
            if waited >= limit_s:
                raise VoxmithError(
                    f"Another voxmith process (a server, or a speak, book or training command) has held the "
                    f"lock '{path}' for over {waited / 60:.0f} minutes while computing the same thing for this "
                    "voice. Wait for it to finish, or stop it if it is stuck, then try again.") from None
            if waiting is not None:
                waiting(waited)
