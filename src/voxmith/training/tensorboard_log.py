"""A run's TensorBoard log (training/<run>/tensorboard/): losses, validation loss and learning rate,
and what a task adds (other values of a step's metrics row, figures such as projection plots).

metrics.csv stays the record voxmith itself reads; this log is for watching a run live with
`tensorboard --logdir <workspace>/training`. Each start of a run writes a new event file; a resumed
run marks its first step as the purge step, so TensorBoard drops the older file's values for steps
the resume redoes instead of showing them twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

# metrics.csv column -> TensorBoard tag; the losses share the "loss/" section so they plot together
# (each declared loss `<key>_loss` as loss/<key>, a staged one as loss/<stage>/<name>).
TAGS = {"total_loss": "loss/total", "val_loss": "loss/validation", "lr": "learning_rate"}


def tag_of(column: str) -> Optional[str]:
    """The TensorBoard tag of a metrics.csv column; None for the step and epoch. A column that is no
    loss (a task's own value, e.g. "eer") keeps its name."""
    if column in ("step", "epoch"):
        return None
    if column in TAGS:
        return TAGS[column]
    if column.endswith("_loss"):
        return "loss/" + column[:-len("_loss")].replace(".", "/")
    return column.replace(".", "/")


class TensorBoardLog:
    def __init__(self, folder: Path, first_step: int):
        """Log steps `first_step` and later into `folder`, superseding any logged before."""
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when training

        # purge_step: readers discard earlier events at this step or later (a resume redoes them).
        self.writer = SummaryWriter(log_dir=str(folder), purge_step=first_step)

    def log(self, row: dict[str, Optional[float]]) -> None:
        """One metrics row (as appended to metrics.csv); empty values are skipped."""
        step = int(row["step"])
        for column, value in row.items():
            tag = tag_of(column)
            if tag is not None and value is not None:
                self.writer.add_scalar(tag, value, global_step=step)

    def add_figure(self, tag: str, figure, step: int) -> None:
        """A matplotlib figure as an image at `step` (e.g. a projection plot)."""
        self.writer.add_figure(tag, figure, global_step=int(step), close=False)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
