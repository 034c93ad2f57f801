"""Training checkpoints: atomic save/load, keep-last-K pruning, latest/best lookup.

A checkpoint is one `step_XXXXXXXX.pt` file (model, optimizer and scheduler state, position in the
run, and the torch/numpy/python RNG states, so a resumed run continues exactly) plus a small
`.json` sidecar with step, epoch and validation loss, written after the `.pt` so that a sidecar
only ever describes a complete checkpoint. Lookups read only the sidecars.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path, atomic_write_json, read_json

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CheckpointInfo:
    path: Path  # the .pt file
    step: int  # optimizer steps done
    epoch: int  # epoch the run was in when saved
    val_loss: Optional[float]  # validation loss measured at this step, if any


def capture_rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng_state(state: dict[str, Any]) -> None:
    # .cpu(): a checkpoint loaded with map_location="cuda" moved the state tensors to the GPU,
    # but torch only accepts RNG states as CPU byte tensors.
    torch.set_rng_state(state["torch"].cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and python's `random` (call before building a model for repeatable runs)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class CheckpointStore:
    """The checkpoints of one run, in one folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def save(self, state: dict[str, Any], step: int, epoch: int, val_loss: Optional[float] = None) -> CheckpointInfo:
        """Write `state` (plus position and RNG states) atomically; return its description."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"step_{step:08d}.pt"
        payload = {**state, "format": FORMAT_VERSION, "step": step, "epoch": epoch, "val_loss": val_loss,
                   "rng": capture_rng_state()}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        atomic_write_json(path.with_suffix(".json"), {"step": step, "epoch": epoch, "val_loss": val_loss})
        return CheckpointInfo(path, step, epoch, val_loss)

    def load(self, info: CheckpointInfo | str | Path, map_location: Any = "cpu") -> dict[str, Any]:
        path = info.path if isinstance(info, CheckpointInfo) else Path(info)
        try:
            # Our own files hold numpy/python RNG states, which the weights-only loader refuses.
            payload = torch.load(path, map_location=map_location, weights_only=False)
        except FileNotFoundError:
            raise VoxmithError(f"Checkpoint '{path}' does not exist.") from None
        except Exception as err:  # a truncated or foreign file
            raise VoxmithError(f"Checkpoint '{path}' cannot be read ({err}); delete it to resume "
                               "from an earlier one.") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise VoxmithError(f"'{path}' is not a voxmith training checkpoint.")
        return payload

    def list(self) -> list[CheckpointInfo]:
        """Complete checkpoints, oldest first."""
        found = []
        for sidecar in self.folder.glob("step_*.json"):
            meta = read_json(sidecar)
            pt = sidecar.with_suffix(".pt")
            if isinstance(meta, dict) and pt.is_file():
                found.append(CheckpointInfo(pt, int(meta["step"]), int(meta["epoch"]), meta.get("val_loss")))
        return sorted(found, key=lambda info: info.step)

    def latest(self) -> Optional[CheckpointInfo]:
        found = self.list()
        return found[-1] if found else None

    def best(self) -> Optional[CheckpointInfo]:
        """The checkpoint with the lowest validation loss (the later one on ties), if any was validated."""
        validated = [info for info in self.list() if info.val_loss is not None]
        return min(reversed(validated), key=lambda info: info.val_loss) if validated else None

    def prune(self, keep_last: int) -> list[Path]:
        """Delete all but the newest `keep_last` checkpoints, always keeping the best; return deleted."""
        found = self.list()
        keep = {info.path for info in found[-keep_last:]} if keep_last > 0 else set()
        best = self.best()
        if best is not None:
            keep.add(best.path)
        deleted = []
        for info in found:
            if info.path not in keep:
                info.path.with_suffix(".json").unlink(missing_ok=True)  # sidecar first: never orphan a .json
                info.path.unlink(missing_ok=True)
                deleted.append(info.path)
        return deleted

    def clear(self) -> None:
        """Delete every checkpoint (for a forced restart)."""
        for path in list(self.folder.glob("step_*.json")) + list(self.folder.glob("step_*.pt")):
            path.unlink(missing_ok=True)
