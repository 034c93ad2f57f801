"""Per-voice cache of whatever engines compute from a voice's clips.

Entries live in `voices/NAME/.cache/<namespace>/` as an `.npz` of arrays plus a `.json` sidecar.
An entry is valid only for the exact clips (content fingerprint) and the exact producer version
(e.g. `piper-vc-1`, `resemblyzer-ge2e-1`) it was computed with; anything else is a miss, and the
stale entry is replaced when the new one is stored. Nothing is ever recomputed on a hit. A cache
that cannot be written (a read-only workspace) is skipped with a warning: the result is still used.
`get_or_compute_once` computes an entry once however many threads and processes ask for it at the
same time; `prune` removes whole namespaces that are no longer used (e.g. checks of old weights).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from voxmith.fsutil import atomic_write_bytes, atomic_write_json, exclusive_lock, read_json
from voxmith.progress import ProgressCallback, report

Arrays = Dict[str, np.ndarray]
CACHE_FOLDER = ".cache"
logger = logging.getLogger(__name__)
_unwritable_roots: set = set()  # cache folders already reported as unwritable in this process


@dataclass(frozen=True)
class CacheKey:
    namespace: str  # who computed it: an engine name, or "speaker"
    producer_version: str  # engine/model version; a new version never reads old entries
    fingerprint: str  # of the voice's clips (see `voxmith.fsutil.fingerprint_files`)

    @property
    def file_stem(self) -> str:
        digest = hashlib.sha256(f"{self.producer_version}\0{self.fingerprint}".encode()).hexdigest()
        return digest[:24]


class ConditioningCache:
    def __init__(self, voice_dir: Path):
        self.root = voice_dir / CACHE_FOLDER

    def _folder(self, namespace: str) -> Path:
        return self.root / re.sub(r"[^A-Za-z0-9_.-]+", "_", namespace)

    def load(self, key: CacheKey) -> Optional[Arrays]:
        folder = self._folder(key.namespace)
        meta = read_json(folder / f"{key.file_stem}.json")
        if not meta or meta.get("fingerprint") != key.fingerprint \
                or meta.get("producer_version") != key.producer_version:
            return None
        try:
            with np.load(folder / f"{key.file_stem}.npz", allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError):
            return None  # damaged entry: treat as a miss, it is rewritten on store

    def store(self, key: CacheKey, arrays: Arrays, info: Optional[dict] = None) -> None:
        folder = self._folder(key.namespace)
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
        atomic_write_bytes(folder / f"{key.file_stem}.npz", buffer.getvalue())
        atomic_write_json(folder / f"{key.file_stem}.json", {
            "namespace": key.namespace, "producer_version": key.producer_version,
            "fingerprint": key.fingerprint, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "arrays": {k: list(np.shape(v)) for k, v in arrays.items()}, **(info or {}),
        })
        # Entries for other clip sets or versions in this namespace are stale now (not the temporary
        # files, ".NAME....", of another writer still writing). Their lock files stay: they are empty,
        # and removing one that is held would let a second holder in beside the first (and fails on
        # Windows).
        for old in folder.iterdir():
            if old.stem != key.file_stem and old.suffix in (".npz", ".json") and not old.name.startswith("."):
                old.unlink(missing_ok=True)

    def get_or_compute(self, key: CacheKey, compute: Callable[[], Arrays],
                       info: Optional[dict] = None) -> tuple[Arrays, bool]:
        """Return (arrays, was_cached), computing and storing them on a miss."""
        cached = self.load(key)
        if cached is not None:
            return cached, True
        arrays = compute()
        try:
            self.store(key, arrays, info)
        except OSError as err:  # a read-only workspace (or a full disk) must not stop the work itself
            if self.root not in _unwritable_roots:  # said once per folder, not once per entry
                _unwritable_roots.add(self.root)
                logger.warning(f"Note: cannot write the cache in '{self.root}' ({err.strerror or err}); "
                               "computed without caching, so the next run computes it again.")
        return arrays, False

    def get_or_compute_once(self, key: CacheKey, compute: Callable[[], Arrays], info: Optional[dict] = None,
                            progress: Optional[ProgressCallback] = None) -> tuple[Arrays, bool]:
        """`get_or_compute`, with `compute` run once for `key` however many threads and processes ask
        at the same time: the first computes under a lock beside the entry, the others wait for it
        (reporting to `progress` while they wait; it may raise to stop waiting) and then read what it
        stored (they compute too only when it could not be stored). A wait beyond
        fsutil.LOCK_WAIT_LIMIT_S raises VoxmithError naming the lock file."""
        cached = self.load(key)
        if cached is not None:
            return cached, True

        def waiting(seconds: float) -> None:
            report(progress, "waiting for another voxmith process computing the same", int(seconds), None,
                   f"{seconds:.0f} s")

        with exclusive_lock(self._folder(key.namespace) / f"{key.file_stem}.lock", waiting=waiting):
            return self.get_or_compute(key, compute, info)

    def touch(self, key: CacheKey) -> None:
        """Mark `key`'s entry as used now (what `prune` keeps by): its sidecar's `last_used_ns`, in
        nanoseconds, not the file's time (a file system may keep seconds, or less). Silently
        nothing when unwritable or missing."""
        path = self._folder(key.namespace) / f"{key.file_stem}.json"
        with contextlib.suppress(OSError, ValueError):
            meta = read_json(path)
            if isinstance(meta, dict):
                atomic_write_json(path, {**meta, "last_used_ns": time.time_ns()})

    def prune(self, prefix: str, keep: Sequence[str], keep_recent: int) -> List[str]:
        """Remove the namespaces whose names start with `prefix`, except those in `keep` and the
        `keep_recent` others used last (their entries' `last_used_ns`, see `touch`). Only this cache's
        own files go (not another writer's temporary ".NAME..." files), and a namespace whose entry
        is being computed right now (its lock is held) is left alone. Returns the namespaces' folder
        names removed."""
        stem_prefix, kept = self._folder(prefix).name, {self._folder(name).name for name in keep}
        try:
            folders = [f for f in self.root.iterdir() if f.is_dir() and f.name.startswith(stem_prefix)
                       and f.name not in kept]
        except OSError:
            return []
        folders.sort(key=_last_used, reverse=True)
        removed = []
        for folder in folders[max(0, keep_recent):]:
            with contextlib.ExitStack() as locks:
                if not all(locks.enter_context(exclusive_lock(lock, wait=False)) for lock in folder.glob("*.lock")):
                    continue  # being computed now
                with contextlib.suppress(OSError):
                    for path in folder.iterdir():
                        if path.suffix in (".npz", ".json") and not path.name.startswith("."):
                            path.unlink()
                # The locks, taken with wait=False above, are removed while held: a process that
                # opened one just before waits on the removed file, and filelock (4.x) has it try
                # again on the path. Windows refuses to remove an open file: there filelock removes
                # it itself when the lock is let go.
                for lock in folder.glob("*.lock"):
                    with contextlib.suppress(OSError):
                        lock.unlink()
            with contextlib.suppress(OSError):
                folder.rmdir()  # not while another writer's temporary file is there
                removed.append(folder.name)
        return removed


def _last_used(folder: Path) -> int:
    """When a namespace's entry was last stored or used, in nanoseconds: the newest `last_used_ns`
    of its sidecars, else (an entry never used since it was stored) the sidecar's own time."""
    newest = 0
    for sidecar in folder.glob("[!.]*.json"):
        with contextlib.suppress(OSError, ValueError):
            meta = read_json(sidecar)
            used = meta.get("last_used_ns") if isinstance(meta, dict) else None
            newest = max(newest, used if isinstance(used, int) else sidecar.stat().st_mtime_ns)
    return newest
