"""`--play`: play a file through whatever the system has, without adding a dependency."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

PLAYERS = (["ffplay", "-nodisp", "-autoexit", "-loglevel", "quiet"], ["paplay"], ["aplay", "-q"],
           ["afplay"], ["play", "-q"])


def play(path: Path) -> str | None:
    """Play `path`; return None on success, or a sentence saying why it could not be played."""
    for command in PLAYERS:
        if shutil.which(command[0]):
            result = subprocess.run([*command, str(path)], capture_output=True)
            return None if result.returncode == 0 else f"{command[0]} could not play it (exit {result.returncode})."
    return "No audio player found (install ffmpeg, pulseaudio-utils or alsa-utils); open the file yourself."
