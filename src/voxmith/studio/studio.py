"""`Studio`: the library's front door. The CLI, web UI and HTTP API are thin shells over it.

    from voxmith import Studio
    studio = Studio()                      # workspace from $VOXMITH_HOME or the default
    studio.voices.add("alice", ["a.wav", "b.mp3"])
    report = studio.analyse_voice("alice")
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional

from voxmith.engines import Conditioning, Engine, create_engine, resolve_device
from voxmith.engines.registry import DEFAULT_ENGINE
from voxmith.progress import ProgressCallback
from voxmith.studio.conditioning import CacheKey
from voxmith.studio.voice_report import VoiceReport, analyse_voice
from voxmith.studio.voices import Voice, VoiceLibrary
from voxmith.studio.workspace import Workspace

DEMO_VOICE_NAME = "demo"


def demo_voice_files() -> List[Path]:
    """The clips of the demo voice shipped in the package (two LJ Speech clips, public domain)."""
    folder = resources.files("voxmith") / "data" / "demo_voice"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".flac"))


class Studio:
    def __init__(self, home: Optional[str | os.PathLike] = None, device: str = "auto"):
        self.workspace = Workspace.open(home)
        self.voices = VoiceLibrary(self.workspace.voices_dir)
        self._device_request = device
        self._device: Optional[str] = None
        self._engines: Dict[str, Engine] = {}

    @property
    def device(self) -> str:
        """The resolved compute device (resolved on first use; errors if unavailable)."""
        if self._device is None:
            self._device = resolve_device(self._device_request)
        return self._device

    def engine(self, name: str = DEFAULT_ENGINE) -> Engine:
        if name not in self._engines:
            self._engines[name] = create_engine(name, self.device)
        return self._engines[name]

    def conditioning(self, voice: Voice | str, engine: Engine,
                     progress: Optional[ProgressCallback] = None) -> tuple[Conditioning, bool]:
        """The engine's conditioning for `voice`, from the cache when the clips are unchanged.
        Returns (conditioning, was_cached)."""
        voice = self.voices.get(voice) if isinstance(voice, str) else voice
        key = CacheKey(engine.name, engine.cache_key(), voice.fingerprint())
        return voice.cache.get_or_compute(
            key,
            lambda: engine.prepare_conditioning(voice.load_clips(), progress),
            {"clips": [p.name for p in voice.clip_paths]},
        )

    def analyse_voice(self, name: str, progress: Optional[ProgressCallback] = None) -> VoiceReport:
        # The speaker encoder is small; the CPU keeps results identical across machines.
        return analyse_voice(self.voices.get(name), "cpu", progress)

    def import_demo_voice(self, name: str = DEMO_VOICE_NAME,
                          progress: Optional[ProgressCallback] = None) -> Voice:
        """Create the demo voice if it is missing (an existing voice of that name is kept)."""
        if self.voices.exists(name):
            return self.voices.get(name)
        return self.voices.add(name, demo_voice_files(), progress=progress)
