"""The web UI's form values as the studio takes them: uploads as paths that still exist, number
boxes the user emptied, JSON settings boxes. Each refusal is a `VoxmithError` in the page's words
(the box's label, the user's own file name), never a TypeError from deep inside the studio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, List, Optional

from voxmith.errors import VoxmithError

# How long an upload stays in the server's temporary folder (the server's sweep reads it; the
# message about a swept upload says it).
UPLOADS_KEPT_S = 3600
JSON_KINDS = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true or false",
              type(None): "null"}


def _upload_path(value: Any) -> Path:
    # Gradio gives a file box's upload as its temporary path (older versions: an object with .name).
    return Path(value if isinstance(value, str) else value.name)


def uploaded_paths(values: Optional[Iterable[Any]]) -> List[Path]:
    """The uploads of a file box, each checked to be there still: Gradio sweeps uploads an hour old
    while the page goes on showing them, and a missing file met later reads as a studio error about
    a path the user never gave."""
    paths = [_upload_path(v) for v in (values or [])]
    gone = [p.name for p in paths if not p.is_file()]
    if gone:
        names = ", ".join(f"'{name}'" for name in gone)
        one = len(gone) == 1
        raise VoxmithError(f"{names} {'is' if one else 'are'} no longer on the server (uploads are kept for "
                           f"{UPLOADS_KEPT_S // 60} minutes, and not after a restart). Remove {'it' if one else 'them'} "
                           f"from the upload box and upload {'it' if one else 'them'} again.")
    return paths


def uploaded_path(value: Any) -> Optional[Path]:
    """One upload (see `uploaded_paths`), or None when there is none."""
    return uploaded_paths([value])[0] if value else None


def number(value: Any, label: str, default: float) -> float:
    """A number box's value; an emptied box (None) is refused naming the box and its default."""
    if value is None or value == "":
        raise VoxmithError(f"The '{label}' box is empty: enter a number (the default is {default:g}).")
    return float(value)


def settings_object(text: Optional[str], what: str) -> dict:
    """A JSON settings box: blank is {}; anything but a JSON object is refused, saying what it was."""
    try:
        values = json.loads(text or "{}")
    except json.JSONDecodeError as err:
        raise VoxmithError(f"The {what} are not valid JSON: {err.msg} (line {err.lineno}).") from None
    if not isinstance(values, dict):
        kind = JSON_KINDS.get(type(values), type(values).__name__)
        raise VoxmithError(f'The {what} must be a JSON object, {{"NAME": VALUE, ...}}, not {kind}; '
                           "{} keeps the defaults.")
    return values
