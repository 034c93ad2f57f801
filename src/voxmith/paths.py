"""Names and paths users choose: validating folder names (voices, datasets, runs), sanitising
uploaded file names, and keeping a path inside the folder it belongs to.

A name becomes a folder, so it must never escape its parent folder or confuse a file system.
A name has one spelling: Unicode NFC ('ë' as one character, however it was typed: macOS file
dialogs and some keyboards send 'e' + a combining diaeresis), so the CLI, the server, the web UI
and the Python API all mean the same folder by it; and characters that make one name look like
another (invisible ones, text-direction controls, odd spaces) are refused.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Optional

from voxmith.errors import NameClashError, VoxmithError

MAX_NAME_LENGTH = 64
_RESERVED_WINDOWS = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)),
                     *(f"lpt{i}" for i in range(1, 10))}


def canonical_name(name: str) -> str:
    """`name` in its one spelling (NFC): 'Zoe' + U+0308 and 'Zo' + U+00EB are both 'Zo\u00eb'."""
    return unicodedata.normalize("NFC", name)


def validate_name(name: str, kind: str = "voice") -> str:
    """`name` in its one spelling (`canonical_name`) if it is safe as a folder name, else raise
    with what to change. Use what it returns: the name as given may be spelt differently."""
    if not isinstance(name, str) or not name.strip():
        raise VoxmithError(f"The {kind} name is empty. Choose a name like 'alice' or 'narrator-2'.")
    if name != name.strip():
        raise VoxmithError(f"The {kind} name '{name}' starts or ends with spaces; remove them.")
    name = canonical_name(name)
    odd = next((ch for ch in name if _looks_like_something_else(ch)), None)
    if odd is not None:
        raise VoxmithError(f"The {kind} name {name!r} contains {_describe(odd)}; use letters, digits, "
                           "spaces, '-', '_' or '.'.")
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


def _looks_like_something_else(ch: str) -> bool:
    """Control and invisible formatting characters (zero-width spaces, text-direction overrides,
    byte-order marks), unassigned or private code points, line breaks, and spaces other than the
    ordinary one (a no-break space looks exactly like a space, but makes another name)."""
    category = unicodedata.category(ch)
    return category.startswith("C") or category in ("Zl", "Zp") or (category == "Zs" and ch != " ")


def _describe(ch: str) -> str:
    code = f"U+{ord(ch):04X}"
    label = f"{code} ({unicodedata.name(ch)})" if unicodedata.name(ch, "") else code
    category = unicodedata.category(ch)
    if category == "Cc":
        return f"the control character {label}"
    if category == "Cf":
        return f"the invisible control character {label}, which hides or reorders text"
    if category == "Zs":
        return f"{label}, a space that looks like an ordinary one but is not (type an ordinary space)"
    if category in ("Zl", "Zp"):
        return f"a line break, {label}"
    return f"{label}, which is not a printable character (control characters and unassigned code points are refused)"


def named_folder(base: Path, name: str, kind: str = "voice") -> Path:
    """The folder in `base` for name `name` (validated): the one there under any spelling of the
    name (made by hand, by macOS, or by voxmith before names had one spelling: it is used as it is,
    never renamed), else `base/<canonical name>`. Two folders spelling one name differently are
    refused, naming both, rather than one of them picked. A folder whose name is refused (made by
    hand, or before such names were refused) is said to be renamed, naming the character."""
    try:
        name = validate_name(name, kind)
    except VoxmithError:
        refused = unusable_folder(base, name, kind)
        if refused is not None:
            raise VoxmithError(refused) from None
        raise
    try:
        with os.scandir(base) as entries:
            spellings = sorted(e.name for e in entries if canonical_name(e.name) == name and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        spellings = []
    if len(spellings) > 1:
        shown = " and ".join(ascii(s) for s in spellings)
        raise NameClashError(
            f"There are {len(spellings)} {kind} folders named '{name}' in '{base}', with the same letters "
            f"written in different Unicode forms ({shown}; the escapes show how each is stored). voxmith "
            f"takes them for one {kind} and will not guess which you mean: rename one of them, or move "
            "its files into the other, then try again.")
    return contained_path(base, spellings[0] if spellings else name)


def is_valid_name(name: str, kind: str = "voice") -> bool:
    """Whether `validate_name` accepts `name` (a folder listed may have a name it refuses)."""
    try:
        validate_name(name, kind)
    except VoxmithError:
        return False
    return True


def unusable_folder(base: Path, name: str, kind: str = "voice") -> Optional[str]:
    """When folder `name` exists in `base` but its name holds a character names may not (a
    no-break space, an invisible one: see `_looks_like_something_else`), what to do about it: the
    folder is listed, yet could be neither used nor removed by its name. Else None."""
    if not isinstance(name, str):
        return None
    odd = next((ch for ch in canonical_name(name) if _looks_like_something_else(ch)), None)
    if odd is None or "/" in name or "\\" in name or name.startswith(".") or not (base / name).is_dir():
        return None
    suggestion = "".join(" " if unicodedata.category(ch) == "Zs" else "" if _looks_like_something_else(ch) else ch
                         for ch in name).strip()
    instead = f" (for example to '{canonical_name(suggestion)}')" if is_valid_name(suggestion, kind) else ""
    return (f"The {kind} folder {ascii(name)} in '{base}' has a name voxmith does not accept: it contains "
            f"{_describe(odd)}. Rename the folder{instead}, then use the new name.")


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
