"""Per-voice cache of whatever engines compute from a voice's clips.

Entries live in `voices/NAME/.cache/<namespace>/` as an `.npz` of arrays plus a `.json` sidecar.
An entry is valid only for the exact clips (content fingerprint) and the exact producer version
(e.g. `piper-vc-1`, `resemblyzer-ge2e-1`) it was computed with; anything else is a miss, and the
stale entry is replaced when the new one is stored. Nothing is ever recomputed on a hit. A cache
that cannot be written (a read-only workspace) is skipped with a warning: the result is still used.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from voxmith.fsutil import atomic_write_bytes, atomic_write_json, read_json

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
        # Entries for other clip sets or versions in this namespace are stale now.
        for old in folder.iterdir():
            if old.stem != key.file_stem and old.suffix in (".npz", ".json"):
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
