"""A minimal real engine for tests of the studio's own logic: it conditions on the clips' loudness
and 'speaks' a tone per word, instantly. Register it only through the `tone_engine` fixtures, which
unregister it again (the registry is process-wide)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voxmith.engines import Candidate, Engine, EngineSettings
from voxmith.errors import VoxmithError


@dataclass
class ToneSettings(EngineSettings):
    pitch_scale: float = 1.0
    vibrato: bool = False
    repeats: int = 1

    def validate(self):
        if not 0.25 <= self.pitch_scale <= 4.0:
            raise VoxmithError("pitch_scale must be between 0.25 and 4.")


class ToneEngine(Engine):
    """A minimal real engine: conditions on the clips' loudness, 'speaks' a tone per word."""

    name = "tone"
    version = "1"
    sample_rate_hz = 16000
    settings_class = ToneSettings

    def prepare_conditioning(self, clips, progress=None):
        return {"rms": np.array(np.mean([np.sqrt(np.mean(c.samples ** 2)) for c in clips]))}

    def synthesize(self, text, conditioning, settings, *, seed, candidates=1, progress=None):
        out = []
        for i in range(candidates):
            rng = np.random.default_rng(seed + i)
            freq = 200 * settings.pitch_scale * rng.uniform(0.9, 1.1)
            t = np.arange(int(0.2 * self.sample_rate_hz * len(text.split()))) / self.sample_rate_hz
            out.append(Candidate((float(conditioning["rms"]) * np.sin(2 * np.pi * freq * t)).astype(np.float32),
                                 self.sample_rate_hz, seed + i, details={"freq": freq}))
        return out
