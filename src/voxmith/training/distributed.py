"""Training in several processes at once (`torchrun`), with torch's DistributedDataParallel.

`torchrun --nproc-per-node N` starts N copies of the same program and tells each one its place in
the environment (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT). `start` reads that, picks the
process's device (cuda:LOCAL_RANK with the nccl backend, or the CPU with gloo) and joins the
process group; the loop then wraps the model in DistributedDataParallel, which averages gradients
across processes during backward. Without torchrun (WORLD_SIZE unset or 1) everything here is a
no-op, so one code path serves one process and many.

How an optimizer step's batches are shared is decided by `plan_step` (see there). This module only
coordinates processes; it never reads or writes run files (only rank 0 does that, in the loop).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, NoReturn, Optional, Union

import torch
import torch.distributed as dist

from voxmith.errors import VoxmithError
from voxmith.process_exit import exit_now

DeviceLike = Union[str, torch.device, None]


@dataclass(frozen=True)
class Distributed:
    """This process's place among the training processes."""

    world_size: int  # processes training together (1 = plain single-process training)
    rank: int  # 0 .. world_size-1; rank 0 writes files and reads commands
    local_rank: int  # index among the processes on this machine (picks the GPU)
    device: torch.device  # where this process's model and gradients live
    owns_group: bool  # this module started the process group, so it must also end it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launch_env() -> tuple[int, int, int]:
    """(world_size, rank, local_rank) as torchrun set them; (1, 0, 0) when not launched by it."""
    values = []
    for name, default in (("WORLD_SIZE", 1), ("RANK", 0), ("LOCAL_RANK", 0)):
        raw = os.environ.get(name, "")
        try:
            values.append(int(raw) if raw.strip() else default)
        except ValueError:
            raise VoxmithError(f"The environment variable {name}={raw!r} is not a whole number; "
                               "start distributed training with torchrun, which sets it.") from None
    world_size, rank, local_rank = values
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise VoxmithError(f"WORLD_SIZE={world_size}, RANK={rank}, LOCAL_RANK={local_rank} do not fit together; "
                           "start distributed training with torchrun, which sets them.")
    return world_size, rank, local_rank


def resolve_device(requested: DeviceLike, model_device: torch.device, world_size: int,
                   local_rank: int) -> torch.device:
    """The device this process trains on.

    The requested device, else wherever the model already is; except that with several
    processes a CUDA device always means each process's own GPU, cuda:LOCAL_RANK, because nccl
    does not support two processes sharing one GPU.
    """
    if requested is None:
        if world_size == 1 or model_device.type != "cuda":
            requested = model_device
        else:  # an engine built for "cuda" sits on cuda:0 in every process: give each its own GPU
            requested = "cuda"
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise VoxmithError(f"'{requested}' is not a device; use cpu, cuda, cuda:N or mps.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VoxmithError(f"Training was asked to run on {device}, but this torch build sees no CUDA GPU.")
    if world_size == 1:
        return device
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise VoxmithError(f"Distributed training runs on CUDA GPUs or the CPU, not on {device.type}.")
    if device.index is not None and device.index != local_rank:
        raise VoxmithError(f"Under torchrun each process trains on cuda:LOCAL_RANK (here cuda:{local_rank}), "
                           f"not {device}; pass 'cuda' and choose GPUs with CUDA_VISIBLE_DEVICES.")
    if local_rank >= torch.cuda.device_count():
        raise VoxmithError(f"torchrun started more processes on this machine than there are CUDA GPUs "
                           f"({torch.cuda.device_count()}); use --nproc-per-node {torch.cuda.device_count()}.")
    return torch.device("cuda", local_rank)


def start(requested: DeviceLike, model_device: torch.device) -> Distributed:
    """Join the process group torchrun prepared (or the one a caller already started)."""
    if dist.is_available() and dist.is_initialized():  # the caller set up the group: use it, leave it
        world_size, rank = dist.get_world_size(), dist.get_rank()
        local_rank = launch_env()[2]
        device = resolve_device(requested, model_device, world_size, local_rank)
        return Distributed(world_size, rank, local_rank, device, owns_group=False)
    world_size, rank, local_rank = launch_env()
    device = resolve_device(requested, model_device, world_size, local_rank)
    if world_size == 1:
        return Distributed(1, 0, local_rank, device, owns_group=False)
    if not dist.is_available():
        raise VoxmithError("This torch build has no torch.distributed; train in a single process.")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # nccl and the object collectives use the current device
    try:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    except ValueError as err:  # e.g. MASTER_ADDR missing: WORLD_SIZE was set by hand
        raise VoxmithError(f"Could not join the other training processes ({err}); "
                           "start distributed training with torchrun.") from None
    return Distributed(world_size, rank, local_rank, device, owns_group=True)


def stop(ctx: Distributed) -> None:
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def exit_worker(status: int = 0) -> NoReturn:
    """End a process that trained under torchrun, now, without the interpreter's shutdown.

    Why: DDP keeps the gloo group alive past destroy_process_group (torch 2.13), and a gloo worker
    thread frees a finished collective's tensors a moment after the caller moved on. If the
    interpreter is shutting down by then, the process aborts ("terminate called without an active
    exception"; about 1 run in 10 of a 2-process test, more on a loaded machine), and torchrun
    reports a failed run although training finished. A pause only makes that rarer; skipping the
    shutdown removes it. Nothing is lost: the loop has closed every file it wrote (checkpoints,
    metrics, TensorBoard), and the standard streams are flushed here."""
    exit_now(status)


def under_torchrun() -> bool:
    """True in a process that torchrun started as one of several."""
    return launch_env()[0] > 1


def wrap(model: torch.nn.Module, ctx: Distributed) -> torch.nn.Module:
    """The model as the training forward sees it: DDP-wrapped when several processes train."""
    if not ctx.enabled:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


# --- the data split -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepPlan:
    """One process's share of one optimizer step."""

    batches: list[int]  # epoch indices of the batches this process runs forward/backward on, in order
    weights: list[float]  # multiplier of each pass's loss (0 for a filler pass)
    group_size: int  # real batches in the whole step, over all processes


def steps_per_epoch(batch_count: int, grad_accumulation: int, world_size: int) -> int:
    """Optimizer steps in an epoch of `batch_count` batches (the last, short group counts)."""
    return math.ceil(batch_count / (grad_accumulation * world_size))


def plan_step(batches_done: int, batch_count: int, grad_accumulation: int, world_size: int,
              rank: int) -> StepPlan:
    """Which batches `rank` runs in the optimizer step that starts at batch `batches_done`.

    A step consumes the next world_size × grad_accumulation batches of the epoch (fewer at its end);
    rank r takes every world_size-th of them, starting with the r-th. So N processes accumulating A
    batches each compute the same step as one process accumulating N×A.

    Every process must run the same number of forward/backward passes, or DDP's gradient
    all-reduce would wait forever. When the last group of an epoch does not divide evenly, a
    process with no batch left runs a filler pass on the group's first batch with weight 0: it
    joins the all-reduce but adds nothing. Real passes are weighted world_size / group_size, so
    after DDP divides by world_size the gradient is exactly the mean over the group's real batches,
    as one process gives (which weights each of its passes 1 / group_size).
    """
    group_size = min(world_size * grad_accumulation, batch_count - batches_done)
    if group_size < 1:
        raise ValueError(f"no batches left at {batches_done} of {batch_count}")
    passes = math.ceil(group_size / world_size)
    batches, weights = [], []
    for i in range(passes):
        position = i * world_size + rank
        real = position < group_size
        batches.append(batches_done + (position if real else 0))
        weights.append(world_size / group_size if real else 0.0)
    return StepPlan(batches, weights, group_size)


# --- collectives (no-ops for one process) -----------------------------------------------------------

def sum_over_ranks(values: list[float], ctx: Distributed) -> list[float]:
    """Element-wise sum of `values` over all processes (float64, so sums match one process's)."""
    if not ctx.enabled:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_flags(flags: list[bool], ctx: Distributed) -> list[bool]:
    """Rank 0's `flags` on every process (each step's commands and Ctrl+C)."""
    if not ctx.enabled:
        return list(flags)
    tensor = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=ctx.device)
    dist.broadcast(tensor, src=0)
    return [bool(x) for x in tensor.tolist()]


def broadcast_object(obj: Any, ctx: Distributed) -> Any:
    """Rank 0's `obj` (any picklable value) on every process."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=ctx.device if ctx.device.type == "cuda" else None)
    return box[0]


def gather_to_main(obj: Any, ctx: Distributed) -> Optional[list[Any]]:
    """Every process's `obj`, in rank order, on rank 0 (None elsewhere)."""
    if not ctx.enabled:
        return [obj]
    gathered: Optional[list[Any]] = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered
