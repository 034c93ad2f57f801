"""`NAME=VALUE` settings as the shells take them (`--set`, `--loss-weight`, the web UI's settings
boxes), read into a dict in one place so every shell accepts the same spelling and refuses a bad
one with the same message. What a name means and whether its value is valid is for the caller
(the engine's typed settings, the training losses); this module only splits."""

from __future__ import annotations

from typing import Dict, Iterable

from voxmith.errors import VoxmithError


def split_assignments(items: Iterable[str], label: str, hint: str = "") -> Dict[str, str]:
    """`NAME=VALUE` strings as {name: value}, both stripped, `-` in a name read as `_` (so
    `--set length-scale=1.1` is `length_scale`); a later repeat of a name wins. An item without
    `=` or without a name raises "<label> '<item>' is not NAME=VALUE" and then `hint`, if any."""
    values: Dict[str, str] = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise VoxmithError(f"{label} '{str(item).strip()}' is not NAME=VALUE{'; ' + hint if hint else '.'}")
        values[name] = value.strip()
    return values


__all__ = ["split_assignments"]
