"""The engine-independent training loop: resume, schedule, metrics, checkpoints, commands, Ctrl+C.

An engine plugs in through `TrainingTask` (a model whose forward returns losses, its batches, a
validation loss); everything else (optimizer, learning-rate schedule, gradient accumulation,
logging, saving, resuming exactly where a run stopped) is done here, the same way for every engine.

The same `train_loop` runs in one process or, started by `torchrun --nproc-per-node N`, in N
processes that train one model together with DistributedDataParallel (see `distributed.py` for how
an optimizer step's batches are shared). Then only rank 0 writes files, reports progress and
listens for commands; its decisions are broadcast so every process acts at the same step.
Commands ("save", "eval", "quit") arrive through a queue or a callable (see `commands.py`); this
module never reads stdin itself.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

import torch

from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report
from voxmith.training import distributed
from voxmith.training.checkpoints import CheckpointInfo, capture_rng_state, restore_rng_state, seed_everything
from voxmith.training.commands import COMMANDS, CommandSource, drain, is_main_process
from voxmith.training.config import ScheduleConfig, TrainingConfig
from voxmith.training.distributed import DeviceLike, Distributed
from voxmith.training.optimizers import build_optimizer
from voxmith.training.lock import TrainerLock
from voxmith.training.losses import LossTerm, resolve
from voxmith.training.run import TrainingRun
from voxmith.training.tensorboard_log import TensorBoardLog

# loss.png and lr.png take ~0.3 CPU-s to draw: a run saving every few steps redrew them at each save.
# They are drawn at a call's first save, its last (finished or stopped), a save asked for, and
# otherwise at most this often (the web UI's plot then trails by at most this much).
PLOT_INTERVAL_S = 30.0

__all__ = ["COMMANDS", "TrainingResult", "TrainingTask", "lr_factor", "train_loop"]


class TrainingTask(Protocol):
    """What an engine provides to be trained by `train_loop`."""

    losses: Sequence[LossTerm]
    """The losses `model(batch)` returns, each under its `key` (see losses.py): the loop minimises
    their sum weighted by the run's config (or the term's default weight) and logs each one."""

    model: torch.nn.Module
    """Trainable parameters are those with requires_grad. `model(batch)` (its forward) runs one
    training batch and returns a dict of scalar losses, some or all of those in `losses`. The loop always calls the model itself, never a method of the task,
    because under torchrun it calls it through DistributedDataParallel, which only synchronises
    gradients for passes made through its own forward. So the forward must: take a batch exactly
    as `batches` gives it, move what it needs to the model's device, and use every trainable
    parameter in each pass (freeze the rest), as DDP requires."""

    def batches(self, epoch: int) -> Sequence[Any]:
        """One epoch of training batches. Must be the same for the same epoch, in every process
        (shuffle with a generator seeded from the epoch, not the global RNG), so that a resumed run
        sees the same data and the processes of a distributed run agree on which batch is whose."""

    def validation_loss(self) -> float:
        """Mean loss over the validation lines, computed with `model` directly (the loop calls it
        in eval mode, without gradients, on rank 0 only)."""

    # Optional: `parameter_groups(model, learning_rate) -> [{"params": [...], "lr": ...}, ...]` (torch
    # optimizer groups covering the trainable parameters; the schedule scales each group's lr alike),
    # `optimizer_options` ({"betas": ..., "eps": ..., "weight_decay": ...} for AdamW),
    # `learning_rate_at(step) -> float` (the learning rate of optimizer step `step`, 0-based, replacing
    # the run's schedule: for an engine whose official recipe has its own, such as SV2TTS'
    # tts_schedule; groups keep their ratios), and `after_step(step, folder, tensorboard) ->
    # {column: value}`: called on rank 0 after each optimizer step, it may write files into the run
    # folder (plots) and returns extra values for the step's metrics row (e.g. an error rate; logged
    # to TensorBoard under their column name).


@dataclass(frozen=True)
class TrainingResult:
    step: int  # optimizer steps done in total
    stopped: str  # "finished", "quit" (command) or "interrupted" (Ctrl+C)
    checkpoint: Optional[CheckpointInfo]  # the newest checkpoint (the same on every rank)
    resumed_from: Optional[int]  # step resumed from, None for a fresh start


def lr_factor(step: int, schedule: ScheduleConfig, steps_per_epoch: int, total_steps: int) -> float:
    """Multiplier of the peak learning rate for optimizer step `step` (0-based)."""
    warmup = schedule.warmup_steps
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup  # linear ramp; never 0, so the first step already learns
    if schedule.scheduler == "cosine":
        span = max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, span) / span))
    passed = sum(1 for epoch in schedule.milestones if step >= epoch * steps_per_epoch)
    return schedule.gamma ** passed


def train_loop(task: TrainingTask, run: TrainingRun, *, config: Optional[TrainingConfig] = None,
               force_restart: bool = False, commands: CommandSource = None,
               progress: Optional[ProgressCallback] = None, handle_sigint: bool = True,
               device: DeviceLike = None) -> TrainingResult:
    """Train `task` in `run`, resuming from its latest checkpoint unless `force_restart`
    (which deletes the run's checkpoints, metrics and TensorBoard log first). Returns when the
    schedule is done, on a "quit" command or on Ctrl+C, in the last two cases after saving a
    checkpoint. Raises `RunBusy` (naming the holder) if another trainer holds the run.

    `device`: where to train (None: where the model is; under torchrun each process's
    cuda:LOCAL_RANK, or the CPU without CUDA). Under torchrun, `commands` and `progress` are used
    on rank 0 only, and the process group torchrun prepared is joined here and left when training
    returns (not after an error: the process is then expected to exit, and torchrun stops the rest).
    """
    config = config or run.load_config()
    # One trainer per run (see lock.py); under torchrun rank 0 holds it for the whole group.
    lock = TrainerLock(run.folder) if is_main_process() else None
    if lock is not None:
        lock.acquire()
    try:
        ctx = distributed.start(device, _model_device(task.model))
        training = _Training(task, run, config, ctx, commands, progress)
        training.begin(force_restart)
        result = training.train(handle_sigint)
        # Only after success: leaving the group waits for the other processes, and after an error
        # they may never come (torchrun stops them all once one process fails).
        distributed.stop(ctx)
    finally:
        if lock is not None:
            lock.release()
    return result


def _model_device(model: torch.nn.Module) -> torch.device:
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


class _Training:
    """One call of `train_loop`: the model, optimizer, schedule and position in the run."""

    def __init__(self, task: TrainingTask, run: TrainingRun, config: TrainingConfig, ctx: Distributed,
                 commands: CommandSource, progress: Optional[ProgressCallback]):
        self.task, self.run, self.config, self.ctx = task, run, config, ctx
        self.commands = commands if ctx.is_main else None  # rank 0 decides for everyone
        self.progress = progress if ctx.is_main else None  # one report per step, not one per process
        s = config.schedule
        self.model = task.model.to(ctx.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise VoxmithError("The model has no trainable parameters; nothing to train.")
        # A task may split its parameters into groups at their own speeds (e.g. GPT-SoVITS trains its
        # text encoder at 0.4x) and set the optimizer's betas/eps; the schedule scales every group alike.
        split = getattr(task, "parameter_groups", None)
        groups = split(self.model, s.learning_rate) if split is not None else params
        self.optimizer = build_optimizer(groups, config.misc.optimizer, s.learning_rate, ctx.device,
                                         **dict(getattr(task, "optimizer_options", None) or {}))
        self.steps_per_epoch = distributed.steps_per_epoch(len(task.batches(0)), s.grad_accumulation,
                                                           ctx.world_size)
        if self.steps_per_epoch < 1:
            raise VoxmithError("The training data gave no batches; check the dataset.")
        self.total_steps = s.epochs * self.steps_per_epoch
        own = getattr(task, "learning_rate_at", None)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, (lambda step: own(step) / s.learning_rate) if own is not None else
            (lambda step: lr_factor(step, s, self.steps_per_epoch, self.total_steps)))
        self.step, self.epoch, self.batches_done = 0, 0, 0
        self.resumed_from: Optional[int] = None
        self.checkpoint: Optional[CheckpointInfo] = None
        self.plotted_at: Optional[float] = None  # time.monotonic() of the last plots
        self.tensorboard: Optional[TensorBoardLog] = None
        self.terms = tuple(getattr(task, "losses", ()) or ())
        if not self.terms:
            raise VoxmithError("The training task declares no losses (TrainingTask.losses); the loop cannot "
                               "know what to minimise.")
        self.loss_weights = resolve(self.terms, config.losses.weights, config.losses.legacy_names)

    # --- start and resume ---------------------------------------------------------------------

    def begin(self, force_restart: bool) -> None:
        store = self.run.checkpoints
        latest = None
        if self.ctx.is_main:
            if force_restart:
                store.clear()
                self.run.clear_metrics()
            latest = None if force_restart else store.latest()
        # Rank 0 picks the checkpoint for all: each listing the folder could disagree with it.
        latest = distributed.broadcast_object(latest, self.ctx)
        if latest is None:
            seed_everything(self.config.misc.seed + self.ctx.rank)  # each process its own dropout masks
        else:
            self._resume(latest)
        self.checkpoint = latest
        if self.ctx.is_main:
            self.run.truncate_metrics(self.step)  # rows after the checkpoint are about to be redone
            self.run.record_start(self.config, self.resumed_from, self.steps_per_epoch)
            self.tensorboard = TensorBoardLog(self.run.tensorboard_dir, first_step=self.step + 1)

    def _resume(self, latest: CheckpointInfo) -> None:
        state = self.run.checkpoints.load(latest, map_location=self.ctx.device)
        if state["steps_per_epoch"] != self.steps_per_epoch:
            s = self.config.schedule
            raise VoxmithError(
                f"The run's batch settings changed since step {latest.step} ({state['steps_per_epoch']} "
                f"steps per epoch then, {self.steps_per_epoch} now with batch size {s.batch_size}, "
                f"gradient accumulation {s.grad_accumulation} and {self.ctx.world_size} process(es)); "
                "restore them or restart the run.")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        per_rank = state.get("rng_by_rank")
        if per_rank is not None and len(per_rank) == self.ctx.world_size:
            restore_rng_state(per_rank[self.ctx.rank])
        else:  # saved by another number of processes: rank 0 continues the saved stream
            restore_rng_state(state["rng"])
            if self.ctx.rank > 0:
                seed_everything(self.config.misc.seed + self.ctx.rank)
        self.step, self.epoch, self.batches_done = state["step"], state["epoch"], state["batches_done"]
        self.resumed_from = latest.step

    # --- training -------------------------------------------------------------------------------

    def train(self, handle_sigint: bool) -> TrainingResult:
        forward = distributed.wrap(self.model, self.ctx)
        stopped = "finished"
        self.model.train()
        try:
            with _InterruptFlag(handle_sigint, under_torchrun=self.ctx.enabled) as interrupt:
                while self.epoch < self.config.schedule.epochs and stopped == "finished":
                    batches = self.task.batches(self.epoch)
                    while self.batches_done < len(batches) and stopped == "finished":
                        stopped = self._step(forward, batches, interrupt)
                    if stopped == "finished":
                        self.epoch, self.batches_done = self.epoch + 1, 0
            # Rank 0 may still be writing its last checkpoint: wait for it and agree on the result.
            checkpoint = distributed.broadcast_object(self.checkpoint, self.ctx)
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
        return TrainingResult(self.step, stopped, checkpoint, self.resumed_from)

    def _step(self, forward: torch.nn.Module, batches: Sequence[Any], interrupt: "_InterruptFlag") -> str:
        """One optimizer step, then metrics, commands, validation and saving; returns how to go on."""
        s, c = self.config.schedule, self.config.checkpoints
        plan = distributed.plan_step(self.batches_done, len(batches), s.grad_accumulation,
                                     self.ctx.world_size, self.ctx.rank)
        losses, lr = self._optimizer_step(forward, [batches[i] for i in plan.batches], plan.weights)
        self.scheduler.step()
        self.step += 1
        self.batches_done += plan.group_size
        report(self.progress, "training", self.step, self.total_steps,
               detail=f"epoch {self.epoch + 1}/{s.epochs}, loss {losses['total_loss']:.4g}")
        wanted = drain(self.commands, self.progress, self.step, self.total_steps)
        save, evaluate, quit_, interrupted = distributed.broadcast_flags(
            ["save" in wanted, "eval" in wanted, "quit" in wanted, interrupt.triggered], self.ctx)
        val_loss = None
        if evaluate or (c.validate_every_steps > 0 and self.step % c.validate_every_steps == 0):
            val_loss = self._validate()
        if self.ctx.is_main:
            after_step = getattr(self.task, "after_step", None)
            extra = dict(after_step(self.step, self.run.folder, self.tensorboard) or {}) if after_step else {}
            row = {"step": self.step, "epoch": self.epoch + self.batches_done / len(batches),
                   **losses, "val_loss": val_loss, "lr": lr, **extra}
            self.run.append_metrics(row)
            self.tensorboard.log(row)
        stopped = "quit" if quit_ else "interrupted" if interrupted else "finished"
        last = stopped != "finished" or self.step == self.total_steps
        if last or save or self.step % c.save_every_steps == 0:
            self._save(val_loss, plots=last or save)
        return stopped

    def _optimizer_step(self, forward: torch.nn.Module, batches: list[Any],
                        weights: list[float]) -> tuple[dict[str, Optional[float]], float]:
        """Accumulate this process's passes, take one optimizer step; return the step's mean
        losses (over all processes' real batches, under each term's metrics column) and the
        learning rate used."""
        keys = [t.key for t in self.terms]
        n = len(keys)
        # [each term's loss..., total, each term seen...]: this process's share of the step's means
        sums = [0.0] * (2 * n + 1)
        self.optimizer.zero_grad(set_to_none=True)
        for i, (batch, weight) in enumerate(zip(batches, weights)):
            # DDP all-reduces gradients in every backward unless told not to; one all-reduce, after
            # the step's last pass, gives the same sum for less traffic.
            last = i == len(batches) - 1
            sync = forward.no_sync() if self.ctx.enabled and not last else contextlib.nullcontext()
            with sync:
                with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16,
                                    enabled=self.config.misc.mixed_precision):
                    losses = forward(batch)
                self._check_losses(losses)
                total = sum(self.loss_weights[name] * loss.float() for name, loss in losses.items())
                (total * weight).backward()
            if weight == 0:
                continue  # a filler pass (see distributed.plan_step): not part of the mean
            share = weight / self.ctx.world_size  # this batch's part of the mean over the whole group
            for k, name in enumerate(keys):
                if name in losses:
                    sums[k] += float(losses[name].detach()) * share
                    sums[n + 1 + k] = 1.0
            sums[n] += float(total.detach()) * share
        summed = distributed.sum_over_ranks(sums, self.ctx)
        total_loss = summed[n]
        # Checked on the summed value, so every process sees the same verdict and stops together.
        if not math.isfinite(total_loss):
            raise VoxmithError(f"The loss became {total_loss} at step {self.step + 1}; lower the learning rate "
                               "and resume from the last checkpoint.")
        lr = self.optimizer.param_groups[0]["lr"]
        if self.config.schedule.max_grad_norm > 0:  # after DDP's all-reduce: the same on every process
            torch.nn.utils.clip_grad_norm_(
                [p for group in self.optimizer.param_groups for p in group["params"]],
                self.config.schedule.max_grad_norm)
        self.optimizer.step()
        row: dict[str, Optional[float]] = {
            term.column: summed[k] if summed[n + 1 + k] else None for k, term in enumerate(self.terms)}
        row["total_loss"] = total_loss
        return row, lr

    def _check_losses(self, losses: Any) -> None:
        keys = [t.key for t in self.terms]
        if not isinstance(losses, dict) or not losses or set(losses) - set(keys):
            found = sorted(losses) if isinstance(losses, dict) else type(losses).__name__
            raise VoxmithError(f"The model's forward returned {found}; its task declares the losses "
                               f"{', '.join(keys)}.")

    def _validate(self) -> Optional[float]:
        """The validation loss on rank 0 (None elsewhere: the others go on to the next step and
        wait for rank 0 in its first collective)."""
        if not self.ctx.is_main:
            return None
        rng = capture_rng_state()  # validation must not change the training's random stream
        self.model.eval()
        try:
            with torch.no_grad():
                val_loss = float(self.task.validation_loss())
        finally:
            self.model.train()
            restore_rng_state(rng)
        report(self.progress, "validation", self.step, self.total_steps, detail=f"validation loss {val_loss:.4g}")
        return val_loss

    def _save(self, val_loss: Optional[float], plots: bool = False) -> None:
        """Rank 0 writes a checkpoint; every process contributes its RNG state for an exact resume.
        The plots are redrawn when `plots`, at this call's first save, or PLOT_INTERVAL_S after the last."""
        rng_by_rank = distributed.gather_to_main(capture_rng_state(), self.ctx)
        if not self.ctx.is_main:
            return
        # self.model is the unwrapped module, so the keys carry no DDP "module." prefix and a
        # checkpoint from N processes loads in any number of them.
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "batches_done": self.batches_done,
                 "steps_per_epoch": self.steps_per_epoch}
        if self.ctx.enabled:
            state["rng_by_rank"] = rng_by_rank
        store = self.run.checkpoints
        info = store.save(state, self.step, self.epoch, val_loss)
        store.prune(self.config.checkpoints.keep_last)
        now = time.monotonic()
        if plots or self.plotted_at is None or now - self.plotted_at >= PLOT_INTERVAL_S:
            self.run.render_plots()
            self.plotted_at = now
        self.tensorboard.flush()
        report(self.progress, "saved checkpoint", self.step, self.total_steps, detail=info.path.name)
        self.checkpoint = info


class _InterruptFlag:
    """Turns Ctrl+C into a flag the loop checks after each step (it then saves and stops).

    In one process a second Ctrl+C behaves as usual. Under torchrun every SIGINT only sets the
    flag: torchrun passes the terminal's Ctrl+C on to its workers a second time, so a repeat is
    no sign of impatience; torchrun's own kill after its shutdown timeout (30 s) is the hard stop.
    Only the main thread may install signal handlers.
    """

    def __init__(self, enabled: bool, under_torchrun: bool = False):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.under_torchrun = under_torchrun
        self.triggered = False
        self.previous: Any = None

    def __enter__(self) -> "_InterruptFlag":
        if self.enabled:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.triggered = True
        if not self.under_torchrun:
            signal.signal(signal.SIGINT, self._previous_handler())

    def _previous_handler(self) -> Any:
        return self.previous if self.previous is not None else signal.default_int_handler

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous_handler())
