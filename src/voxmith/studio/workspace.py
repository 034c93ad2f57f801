"""The workspace: one folder holding everything a user makes.

    <home>/voices/    one folder per voice: the clips, voice.json, and .cache/ (conditioning)
    <home>/datasets/  transcribed datasets (LJSpeech layout)
    <home>/training/  training runs
    <home>/results/   generated speech with JSON sidecars
    <home>/models/    downloaded model weights
    <home>/jobs/books/ the HTTP API's book jobs, one JSON record each (made when first needed)

The home is `--home DIR`, else $VOXMITH_HOME, else $XDG_DATA_HOME/voxmith (~/.local/share/voxmith).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from voxmith.errors import VoxmithError

SUBFOLDERS = ("voices", "datasets", "training", "results", "models")


def default_home() -> Path:
    env = os.environ.get("VOXMITH_HOME")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join("~", ".local", "share")
    return Path(data_home).expanduser() / "voxmith"


@dataclass(frozen=True)
class Workspace:
    home: Path

    @classmethod
    def open(cls, home: Optional[str | os.PathLike] = None) -> "Workspace":
        """Open (creating if needed) the workspace at `home` or the default location."""
        path = Path(home).expanduser() if home else default_home()
        path = path.resolve()
        if path.exists() and not path.is_dir():
            raise VoxmithError(f"Workspace '{path}' exists but is not a folder. Pick another --home.")
        try:
            for sub in SUBFOLDERS:
                (path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VoxmithError(f"Cannot create the workspace at '{path}': {err.strerror}. "
                               "Pick a writable folder with --home or VOXMITH_HOME.") from None
        return cls(path)

    @property
    def voices_dir(self) -> Path:
        return self.home / "voices"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def training_dir(self) -> Path:
        return self.home / "training"

    @property
    def results_dir(self) -> Path:
        return self.home / "results"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def uploads_dir(self) -> Path:
        """Recordings sent to the HTTP API for conversion, kept so their results can be reproduced."""
        return self.home / "uploads"

    @property
    def book_jobs_dir(self) -> Path:
        """The HTTP API's book jobs, one record each, so that a restarted server lists them again."""
        return self.home / "jobs" / "books"
