"""Names and paths users choose: validating folder names (voices, datasets, runs), sanitising
uploaded file names, and keeping a path inside the folder it belongs to.

A name becomes a folder, so it must never escape its parent folder or confuse a file system.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from voxmith.errors import VoxmithError

MAX_NAME_LENGTH = 64
_RESERVED_WINDOWS = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}


def validate_name(name: str, kind: str = "voice") -> str:
    """Return `name` if it is safe as a folder name, else raise with what to change."""
    if not isinstance(name, str) or not name.strip():
        raise VoxmithError(f"The {kind} name is empty. Choose a name like 'alice' or 'narrator-2'.")
    if name != name.strip():
        raise VoxmithError(f"The {kind} name '{name}' starts or ends with spaces; remove them.")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise VoxmithError(f"The {kind} name {name!r} contains control characters; use letters, "
                           "digits, spaces, '-', '_' or '.'.")
    if "/" in name or "\\" in name:
        raise VoxmithError(f"The {kind} name '{name}' contains a path separator ('/' or '\\'); "
                           "a name is one folder, not a path.")
    if name in (".", "..") or name.startswith("."):
        raise VoxmithError(f"The {kind} name '{name}' must not start with '.' (reserved for hidden files).")
    if ".." in name:
        raise VoxmithError(f"The {kind} name '{name}' must not contain '..'.")
    if re.search(r'[<>:"|?*]', name):
        raise VoxmithError(f"The {kind} name '{name}' contains one of < > : \" | ? *, which some "
                           "file systems forbid; remove it.")
    if len(name) > MAX_NAME_LENGTH:
        raise VoxmithError(f"The {kind} name is {len(name)} characters long; keep it to {MAX_NAME_LENGTH}.")
    if name.split(".")[0].lower() in _RESERVED_WINDOWS:
        raise VoxmithError(f"The {kind} name '{name}' is reserved on Windows; choose another.")
    return name


def sanitize_filename(filename: str, default_stem: str = "clip") -> str:
    """A safe file name from an uploaded/original one: base name only, ASCII letters, digits,
    '-', '_' and one extension. 'My Clip (1).WAV' -> 'My_Clip_1.wav'."""
    base = re.split(r"[\\/]", filename)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-")[:80] or default_stem
    ext = re.sub(r"[^A-Za-z0-9]+", "", ext).lower()[:8]
    return f"{stem}.{ext}" if ext else stem


def contained_path(base: Path, *parts: str) -> Path:
    """`base/parts...`, refusing anything that would resolve outside `base` (symlinks included)."""
    base_resolved = base.resolve()
    candidate = base_resolved.joinpath(*parts).resolve()
    if candidate != base_resolved and base_resolved not in candidate.parents:
        raise VoxmithError(f"Refusing to use '{'/'.join(parts)}': it points outside '{base}'.")
    return candidate
