"""The engine-independent training loop: resume, schedule, metrics, checkpoints, commands, Ctrl+C.

An engine plugs in through `TrainingTask` (a model, its batches, one training step, a validation
loss); everything else (optimizer, learning-rate schedule, gradient accumulation, logging, saving,
resuming exactly where a run stopped) is done here, the same way for every engine.
Commands ("save", "eval", "quit") arrive through a queue or a callable, so a CLI can feed it stdin
lines from a thread and a web UI can feed it button presses; this module never reads stdin itself.
"""

from __future__ import annotations

import math
import queue
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Protocol, Sequence, Union

import torch

from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report
from voxmith.training.checkpoints import CheckpointInfo, capture_rng_state, restore_rng_state, seed_everything
from voxmith.training.config import ScheduleConfig, TrainingConfig
from voxmith.training.run import TrainingRun

COMMANDS = ("save", "eval", "quit")
WEIGHT_DECAY = 0.01  # AdamW's default in the DLAS/ai-voice-cloning fine-tuning recipes
CommandSource = Union["queue.Queue[str]", Callable[[], Iterable[str]], None]


class TrainingTask(Protocol):
    """What an engine provides to be trained by `train_loop`."""

    model: torch.nn.Module  # trainable parameters are those with requires_grad

    def batches(self, epoch: int) -> Sequence[Any]:
        """One epoch of training batches. Must be the same for the same epoch (shuffle with a
        generator seeded from the epoch, not the global RNG) so a resumed run sees the same data."""

    def training_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Forward one batch; return scalar losses under "text" and/or "mel" (weighted by the config)."""

    def validation_loss(self) -> float:
        """Mean loss over the validation lines (called in eval mode, without gradients)."""


@dataclass(frozen=True)
class TrainingResult:
    step: int  # optimizer steps done in total
    stopped: str  # "finished", "quit" (command) or "interrupted" (Ctrl+C)
    checkpoint: Optional[CheckpointInfo]  # the newest checkpoint
    resumed_from: Optional[int]  # step resumed from, None for a fresh start


def lr_factor(step: int, schedule: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate for optimizer step `step` (0-based)."""
    warmup = schedule.warmup_steps
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup  # linear ramp; never 0, so the first step already learns
    if schedule.scheduler == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    passed = sum(1 for epoch in schedule.milestones if step >= epoch * steps_per_epoch)
    return schedule.gamma ** passed


def train_loop(task: TrainingTask, run: TrainingRun, *, config: Optional[TrainingConfig] = None,
               force_restart: bool = False, commands: CommandSource = None,
               progress: Optional[ProgressCallback] = None, handle_sigint: bool = True) -> TrainingResult:
    """Train `task` in `run`, resuming from its latest checkpoint unless `force_restart`
    (which deletes the run's checkpoints and metrics first). Returns when the schedule is done,
    on a "quit" command or on Ctrl+C, in the last two cases after saving a checkpoint."""
    config = config or run.load_config()
    s, c = config.schedule, config.checkpoints
    model = task.model
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise VoxmithError("The model has no trainable parameters; nothing to train.")
    device = params[0].device
    optimizer = torch.optim.AdamW(params, lr=s.learning_rate, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(task.batches(0)) / s.grad_accumulation)
    if steps_per_epoch < 1:
        raise VoxmithError("The training data gave no batches; check the dataset.")
    total_steps = s.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, s, steps_per_epoch, total_steps))

    store = run.checkpoints
    step, epoch, batches_done, resumed_from = 0, 0, 0, None
    latest = None if force_restart else store.latest()
    if force_restart:
        store.clear()
        run.clear_metrics()
    if latest is None:
        seed_everything(config.misc.seed)
    else:
        state = store.load(latest, map_location=device)
        if state["steps_per_epoch"] != steps_per_epoch:
            raise VoxmithError(f"The run's batch settings changed since step {latest.step} "
                               f"({state['steps_per_epoch']} steps per epoch then, {steps_per_epoch} now); "
                               "restore them or restart the run.")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"])
        step, epoch, batches_done, resumed_from = state["step"], state["epoch"], state["batches_done"], latest.step
        run.truncate_metrics(step)  # rows after the checkpoint are about to be redone
    run.record_start(config, resumed_from)

    def validate() -> float:
        rng = capture_rng_state()  # validation must not change the training's random stream
        model.eval()
        try:
            with torch.no_grad():
                return float(task.validation_loss())
        finally:
            model.train()
            restore_rng_state(rng)

    def save(val_loss: Optional[float]) -> CheckpointInfo:
        info = store.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scheduler": scheduler.state_dict(), "batches_done": batches_done,
                           "steps_per_epoch": steps_per_epoch}, step, epoch, val_loss)
        store.prune(c.keep_last)
        run.render_plots()
        report(progress, "saved checkpoint", step, total_steps, detail=info.path.name)
        return info

    stopped, checkpoint = "finished", latest
    model.train()
    with _InterruptFlag(handle_sigint) as interrupt:
        while epoch < s.epochs and stopped == "finished":
            batches = task.batches(epoch)
            batch_iter = iter(batches)
            for _ in range(batches_done):  # resume mid-epoch: pass over the batches already used
                next(batch_iter)
            while batches_done < len(batches):
                group = min(s.grad_accumulation, len(batches) - batches_done)
                losses, lr = _optimizer_step(task, config, optimizer, [next(batch_iter) for _ in range(group)],
                                             device, step)
                scheduler.step()
                step += 1
                batches_done += group
                report(progress, "training", step, total_steps,
                       detail=f"epoch {epoch + 1}/{s.epochs}, loss {losses['total_loss']:.4g}")
                wanted = _drain(commands, progress, step, total_steps)
                val_loss = None
                if "eval" in wanted or (c.validate_every_steps > 0 and step % c.validate_every_steps == 0):
                    val_loss = validate()
                    report(progress, "validation", step, total_steps, detail=f"validation loss {val_loss:.4g}")
                run.append_metrics({"step": step, "epoch": epoch + batches_done / len(batches),
                                    **losses, "val_loss": val_loss, "lr": lr})
                if "quit" in wanted:
                    stopped = "quit"
                elif interrupt.triggered:
                    stopped = "interrupted"
                if (stopped != "finished" or "save" in wanted or step % c.save_every_steps == 0
                        or step == total_steps):
                    checkpoint = save(val_loss)
                if stopped != "finished":
                    break
            else:
                epoch, batches_done = epoch + 1, 0
    return TrainingResult(step, stopped, checkpoint, resumed_from)


def _optimizer_step(task: TrainingTask, config: TrainingConfig, optimizer: torch.optim.Optimizer,
                    batches: list[Any], device: torch.device, step: int) -> tuple[dict[str, float], float]:
    """Accumulate gradients over `batches`, take one optimizer step; return mean losses and the lr used."""
    weights = {"text": config.losses.text_weight, "mel": config.losses.mel_weight}
    sums = {"text_loss": 0.0, "mel_loss": 0.0, "total_loss": 0.0}
    seen: set[str] = set()
    optimizer.zero_grad(set_to_none=True)
    for batch in batches:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.misc.mixed_precision):
            losses = task.training_step(batch)
        unknown = set(losses) - set(weights)
        if unknown or not losses:
            raise VoxmithError(f"training_step returned losses {sorted(losses)}; expected 'text' and/or 'mel'.")
        total = sum(weights[name] * loss.float() for name, loss in losses.items())
        if not torch.isfinite(total):
            raise VoxmithError(f"The loss became {float(total.detach())} at step {step + 1}; lower the learning rate "
                               "and resume from the last checkpoint.")
        (total / len(batches)).backward()  # mean over the group, as one big batch would give
        for name, loss in losses.items():
            sums[f"{name}_loss"] += float(loss.detach()) / len(batches)
            seen.add(f"{name}_loss")
        sums["total_loss"] += float(total.detach()) / len(batches)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    return {k: (v if k in seen or k == "total_loss" else None) for k, v in sums.items()}, lr


def _drain(commands: CommandSource, progress: Optional[ProgressCallback], step: int, total: int) -> set[str]:
    """All commands waiting now, lower-cased; unknown ones are reported and dropped."""
    if commands is None:
        return set()
    if hasattr(commands, "get_nowait"):
        raw = []
        while True:
            try:
                raw.append(commands.get_nowait())
            except queue.Empty:
                break
    else:
        raw = list(commands() or [])
    wanted = set()
    for command in raw:
        word = str(command).strip().lower()
        if word in COMMANDS:
            wanted.add(word)
        elif word:
            report(progress, "training", step, total,
                   detail=f"unknown command '{word}'; use {', '.join(COMMANDS)}")
    return wanted


class _InterruptFlag:
    """Turns the first Ctrl+C into a flag the loop checks after each step (it then saves and
    stops); a second Ctrl+C behaves as usual. Only the main thread may install signal handlers."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.triggered = False
        self.previous: Any = None

    def __enter__(self) -> "_InterruptFlag":
        if self.enabled:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.triggered = True
        signal.signal(signal.SIGINT, self._previous_handler())

    def _previous_handler(self) -> Any:
        return self.previous if self.previous is not None else signal.default_int_handler

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous_handler())
