"""A tiny real training task for the training tests, and a worker that torchrun can start.

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m tests.tiny_training RUN_FOLDER ...

trains the tiny task in RUN_FOLDER exactly as a CLI command under torchrun would, and writes each
rank's TrainingResult and progress events to RUN_FOLDER/../result-rank<R>.json for the test to read.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
from pathlib import Path

import torch

from voxmith.training import TrainingConfig, TrainingRun, defaults_for, train_loop
from voxmith.training.distributed import exit_worker
from voxmith.training.losses import LossTerm

TRUE_WEIGHTS = torch.tensor([[1.5], [-2.0], [0.5], [3.0]])


class TinyModel(torch.nn.Module):
    """y = x @ w, learned by one linear layer (after dropout, when asked, so RNG restore matters).
    Its forward takes a batch of line indices and returns the losses, as engines' models do."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, dropout: float):
        super().__init__()
        self.x, self.y = x, y  # plain attributes, not buffers: data is not part of the checkpoint
        self.net = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(4, 1))

    def forward(self, idx: torch.Tensor) -> dict[str, torch.Tensor]:
        device = self.net[1].weight.device
        pred = self.net(self.x[idx.cpu()].to(device))
        return {"mel": torch.nn.functional.mse_loss(pred, self.y[idx.cpu()].to(device)),
                # a zero loss that still draws from the RNG, so a resume must restore it exactly
                "text": pred.abs().mean() * 0.0 + torch.rand((), device=device) * 0.0}


class TinyTask:
    # Two losses, as an engine with two would declare them (the second always 0, see TinyModel).
    losses = (LossTerm("text", 0.01, "zero, drawing from the RNG"),
              LossTerm("mel", 1.0, "squared error of the prediction"))

    def __init__(self, seed: int = 0, lines: int = 48, batch_size: int = 8, dropout: float = 0.02):
        gen = torch.Generator().manual_seed(1234)
        x = torch.randn(lines, 4, generator=gen)
        y = x @ TRUE_WEIGHTS + 0.01 * torch.randn(lines, 1, generator=gen)
        self.val_x = torch.randn(16, 4, generator=gen)
        self.val_y = self.val_x @ TRUE_WEIGHTS
        self.batch_size = batch_size
        torch.manual_seed(seed)
        self.model = TinyModel(x, y, dropout)

    def batches(self, epoch):
        order = torch.randperm(len(self.model.x), generator=torch.Generator().manual_seed(epoch))
        return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def validation_loss(self):
        device = self.model.net[1].weight.device
        return float(torch.nn.functional.mse_loss(self.model.net(self.val_x.to(device)), self.val_y.to(device)))


def tiny_config(epochs: int = 6, lines: int = 48, accumulation: int = 2, save: int = 100, validate: int = 3,
                keep: int = 2) -> TrainingConfig:
    config = defaults_for(lines, epochs, dataset="tiny")
    config.schedule.batch_size = 8
    config.schedule.grad_accumulation = accumulation
    config.schedule.learning_rate = 0.05
    config.schedule.warmup_steps = 2
    config.checkpoints.save_every_steps = save
    config.checkpoints.validate_every_steps = validate
    config.checkpoints.keep_last = keep
    return config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_folder", type=Path)
    parser.add_argument("--lines", type=int, default=48)
    parser.add_argument("--stop-at", type=int, default=0, help="stop after this step")
    parser.add_argument("--stop-with", choices=("quit", "sigint"), default="quit")
    args = parser.parse_args()
    rank = int(os.environ["RANK"])
    events = []
    commands: queue.Queue[str] = queue.Queue()

    def on_progress(event):
        events.append(event.__dict__)
        if event.stage == "training" and event.done == args.stop_at:
            if args.stop_with == "quit":
                commands.put("quit")
            else:  # as if Ctrl+C reached rank 0 alone: the loop must still stop every rank
                os.kill(os.getpid(), signal.SIGINT)

    task = TinyTask(lines=args.lines, dropout=0.0)
    # Only rank 0 gets the commands, as `stdin_commands` gives them: the others must follow its lead.
    result = train_loop(task, TrainingRun(args.run_folder), commands=commands if rank == 0 else None,
                        progress=on_progress, device="cpu")
    record = {"step": result.step, "stopped": result.stopped, "resumed_from": result.resumed_from,
              "checkpoint": str(result.checkpoint.path) if result.checkpoint else None, "events": len(events)}
    (args.run_folder.parent / f"result-rank{rank}.json").write_text(json.dumps(record))
    exit_worker(0)  # as `voxmith train run` leaves under torchrun: no interpreter shutdown to race gloo


if __name__ == "__main__":
    main()
