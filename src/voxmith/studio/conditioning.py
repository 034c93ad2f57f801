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
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from voxmith.fsutil import atomic_write_bytes, atomic_write_json, exclusive_lock, read_json

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
        # Entries for other clip sets or versions in this namespace are stale now, and so are their
        # locks (not the temporary files, ".NAME....", of another writer still writing).
        for old in folder.iterdir():
            if old.stem != key.file_stem and old.suffix in (".npz", ".json", ".lock") and not old.name.startswith("."):
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

    def get_or_compute_once(self, key: CacheKey, compute: Callable[[], Arrays],
                            info: Optional[dict] = None) -> tuple[Arrays, bool]:
        """`get_or_compute`, with `compute` run once for `key` however many threads and processes ask
        at the same time: the first computes under a lock beside the entry, the others wait for it
        and then read what it stored (they compute too only when it could not be stored)."""
        cached = self.load(key)
        if cached is not None:
            return cached, True
        with exclusive_lock(self._folder(key.namespace) / f"{key.file_stem}.lock"):
            return self.get_or_compute(key, compute, info)

    def touch(self, key: CacheKey) -> None:
        """Mark `key`'s entry as used now (what `prune` keeps by); silently nothing when unwritable."""
        with contextlib.suppress(OSError):
            os.utime(self._folder(key.namespace) / f"{key.file_stem}.json")

    def prune(self, prefix: str, keep: str, keep_recent: int) -> List[str]:
        """Remove the namespaces whose names start with `prefix`, except `keep` and the `keep_recent`
        others used last (their entries' time, see `touch`). Only this cache's own files go, and a
        namespace whose entry is being computed right now (its lock is held) is left alone. Returns
        the namespaces' folder names removed."""
        stem_prefix, kept = self._folder(prefix).name, self._folder(keep).name
        try:
            folders = [f for f in self.root.iterdir() if f.is_dir() and f.name.startswith(stem_prefix)
                       and f.name != kept]
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
                        if path.suffix in (".npz", ".json", ".lock"):
                            path.unlink()
                    folder.rmdir()
                    removed.append(folder.name)
        return removed


def _last_used(folder: Path) -> float:
    """When a namespace's entry was last stored or used (the newest of its sidecars' times)."""
    try:
        return max([p.stat().st_mtime for p in folder.glob("*.json")] or [folder.stat().st_mtime])
    except OSError:
        return 0.0
