"""Engine-independent training runs: config, checkpoints, run folders and the training loop.

Engines plug in by implementing `TrainingTask`; the CLI and web UI drive `train_loop`.
"""

from voxmith.training.checkpoints import CheckpointInfo, CheckpointStore, seed_everything
from voxmith.training.config import TrainingConfig, defaults_for, load_config, save_config, validate
from voxmith.training.loop import TrainingResult, TrainingTask, lr_factor, train_loop
from voxmith.training.run import TrainingRun

__all__ = ["CheckpointInfo", "CheckpointStore", "TrainingConfig", "TrainingResult", "TrainingRun",
           "TrainingTask", "defaults_for", "load_config", "lr_factor", "save_config", "seed_everything",
           "train_loop", "validate"]
