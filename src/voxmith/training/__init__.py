"""Engine-independent training runs: config, checkpoints, run folders and the training loop.

Engines plug in by implementing `TrainingTask`; the CLI and web UI drive `train_loop`, in one
process or in several started by torchrun (DistributedDataParallel).
"""

from voxmith.training.checkpoints import CheckpointInfo, CheckpointStore, seed_everything
from voxmith.training.commands import COMMANDS, CommandSource, is_main_process, stdin_commands
from voxmith.training.config import TrainingConfig, defaults_for, load_config, save_config, validate
from voxmith.training.distributed import Distributed, launch_env
from voxmith.training.loop import TrainingResult, TrainingTask, lr_factor, train_loop
from voxmith.training.optimizers import OPTIMIZERS, optimizer_problems
from voxmith.training.run import TrainingRun

__all__ = ["COMMANDS", "CheckpointInfo", "CheckpointStore", "CommandSource", "Distributed", "OPTIMIZERS",
           "TrainingConfig", "TrainingResult", "TrainingRun", "TrainingTask", "defaults_for", "is_main_process", "launch_env",
           "load_config", "lr_factor", "optimizer_problems", "save_config", "seed_everything",
           "stdin_commands", "train_loop", "validate"]
