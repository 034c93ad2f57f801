"""Engine-independent training runs: config, checkpoints, run folders and the training loop.

Engines plug in by implementing `TrainingTask` and declaring their losses (`losses.LossTerm`); the
CLI and web UI drive `train_loop`, in one process or in several started by torchrun
(DistributedDataParallel).

The names below are imported on first use (PEP 562), so that importing a light module of this
package (`voxmith.training.losses`, which every engine declares its losses with) does not load
torch with the loop.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CheckpointInfo": "checkpoints", "CheckpointStore": "checkpoints", "seed_everything": "checkpoints",
    "COMMANDS": "commands", "CommandSource": "commands", "is_main_process": "commands",
    "stdin_commands": "commands",
    "TrainingConfig": "config", "defaults_for": "config", "load_config": "config", "save_config": "config",
    "validate": "config",
    "Distributed": "distributed", "launch_env": "distributed",
    "LossTerm": "losses",
    "TrainingResult": "loop", "TrainingTask": "loop", "lr_factor": "loop", "train_loop": "loop",
    "OPTIMIZERS": "optimizers", "optimizer_problems": "optimizers",
    "TrainingRun": "run",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'voxmith.training' has no attribute '{name}'")
    value = getattr(importlib.import_module(f"voxmith.training.{_WHERE[name]}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value
