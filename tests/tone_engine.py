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


class TunedToneEngine(ToneEngine):
    """The tone engine with fine-tunes that are checked on a voice, as piper-vc's are: a run's
    "weights" are a pitch factor, and the check (`check_finetune`, counted in `checks`) allows half
    of it, which every take then records in `details["guard"]`. For tests of how the studio resolves,
    checks, caches and records fine-tunes; the training runs are stood in for by the test."""

    checks_finetunes = True
    checks: list = []  # (voice conditioning rms, weights digest) of every check run, in this process

    def __init__(self, device="cpu", models_dir=None):
        super().__init__(device, models_dir)
        self.factor = None  # the fine-tune's pitch factor; None: stock

    def load_finetune(self, finetune):
        variant = type(self)(self.device, self.models_dir)
        variant.factor = float(finetune.load_state()["factor"])
        return variant

    def finetune_check_key(self):
        return None if self.factor is None else f"check1-{self.factor:.6f}"

    def check_finetune(self, conditioning, progress=None):
        type(self).checks.append((float(conditioning["rms"]), self.finetune_check_key()))
        return {"finetune.allowed": np.array(0.5)}

    def synthesize(self, text, conditioning, settings, *, seed, candidates=1, progress=None):
        if self.factor is None:
            return super().synthesize(text, conditioning, settings, seed=seed, candidates=candidates)
        allowed = float(conditioning["finetune.allowed"])  # present only when the check ran
        scale = 1.0 + (self.factor - 1.0) * allowed
        tuned = type(settings)(**{**settings.to_dict(), "pitch_scale": settings.pitch_scale * scale})
        takes = super().synthesize(text, conditioning, tuned, seed=seed, candidates=candidates)
        for take in takes:
            take.details["guard"] = {"checked": "fine-tuned weights", "allowed": allowed}
        return takes


def stand_in_runs(monkeypatch, tmp_path, latest: int = 7):
    """Training runs stood in for `TunedToneEngine`: every run's checkpoint STEP ("latest": `latest`)
    has the pitch factor 1 + STEP / 10; a run named "missing" does not exist."""
    from voxmith.engines import Finetune
    from voxmith.studio.training_runs import TrainingRuns
    from voxmith.training.checkpoints import CheckpointInfo

    def finetune(self, name, which="latest"):
        if name == "missing":
            raise VoxmithError(f"No training run named '{name}'.")
        step = latest if which in ("latest", "best") else int(which)
        return (Finetune(f"{name}:{step}", f"run '{name}', step {step}", lambda: {"factor": 1 + step / 10}),
                "tone", CheckpointInfo(tmp_path / f"{name}-{step}.pt", step, 1, None))

    monkeypatch.setattr(TrainingRuns, "finetune", finetune)
    monkeypatch.setattr(TunedToneEngine, "checks", [])
