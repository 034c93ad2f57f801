"""Long speech that survives interruptions: finished sentences kept on disk until the result is written.

A resumable request (`SpeakRequest.resumable`; the CLI's `--text-file`) gets a folder under
`<home>/.cache/unfinished/<key>/`, where `key` hashes everything that decides the audio (text, voice
fingerprint, engine and version, settings, seed as asked, candidates, ranking, weights, output). Each
finished sentence is stored there as it is made: its samples (`NNNNN.npy`, float32, exactly what the
result joins) and then its sidecar record (`NNNNN.json`, written last, so a sentence counts only when
both are complete). The same request made again, after Ctrl-C, a kill or a crash, finds the folder,
takes the seed and output name chosen the first time from `state.json`, and synthesises only the
sentences that are missing: since every sentence has its own seed, the result is the same, sample for
sample, as an uninterrupted run's. The folder is removed once the result and its sidecar are written.

A lock (`flock`, released by the OS even when the process is killed) keeps two processes from
working on the same folder at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np

from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path, atomic_write_json, read_json

FOLDER = "unfinished"
# Hidden: a book's folder is the user's (its chapters and manifest), and a lock file is no part of it.
LOCK_FILE = ".lock"


def request_key(parts: dict) -> str:
    """A stable hash of what decides a speech's audio (a JSON-able dict)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:24]


@contextlib.contextmanager
def folder_lock(folder: Path, busy_message: str) -> Iterator[None]:
    """Hold an exclusive `flock` on `folder/.lock` (released by the OS if the process dies)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise VoxmithError(busy_message) from None
        yield


class SentenceStore:
    """The finished sentences of one unfinished speech."""

    def __init__(self, cache_dir: Path, key: str):
        self.folder = cache_dir / FOLDER / key
        self._lock = None

    def open(self) -> dict:
        """Lock the folder and return its state ({} when new). Raises if another process holds it."""
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        lock = open(self.folder / LOCK_FILE, "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            raise VoxmithError("Another voxmith process is making this same speech right now; wait for it to "
                               "finish (or stop it) and run the command again to resume.") from None
        self._lock = lock
        return read_json(self.folder / "state.json", default=None) or {}

    def begin(self, seed: int, output: Path, sentences: int) -> None:
        atomic_write_json(self.folder / "state.json", {"seed": seed, "output": str(output), "sentences": sentences,
                                                       "started": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def _paths(self, index: int) -> Tuple[Path, Path]:
        return self.folder / f"{index:05d}.npy", self.folder / f"{index:05d}.json"

    def load(self, index: int) -> Optional[Tuple[np.ndarray, dict]]:
        """Sentence `index`'s stored samples and record, or None when it is not (completely) there."""
        samples_path, record_path = self._paths(index)
        try:
            record = read_json(record_path, default=None)
            if record is None:
                return None
            return np.load(samples_path, allow_pickle=False), record
        except (ValueError, OSError):  # damaged by a crash mid-write: made again
            return None

    def done(self, count: int) -> int:
        return sum(self._paths(i)[1].exists() for i in range(count))

    def save(self, index: int, samples: np.ndarray, record: dict) -> None:
        samples_path, record_path = self._paths(index)
        with atomic_path(samples_path) as tmp:
            np.save(tmp, np.asarray(samples, dtype=np.float32), allow_pickle=False)
        atomic_write_json(record_path, record)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def remove(self) -> None:
        """The result is written: the stored sentences are no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.release()
        with contextlib.suppress(OSError):
            os.rmdir(self.folder.parent)  # only when empty
