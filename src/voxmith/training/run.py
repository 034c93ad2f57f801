"""A training run's folder: config, start records, checkpoints, metrics and plots.

    training/<run>/config.yaml      the settings (commented; edit, then resume)
    training/<run>/starts/          one record per start: config, voxmith version, resumed step
    training/<run>/checkpoints/     see `checkpoints.py`
    training/<run>/metrics.csv      one row per optimizer step
    training/<run>/loss.png, lr.png curves rendered from metrics.csv
    training/<run>/tensorboard/     the same values for TensorBoard (see `tensorboard_log.py`)

This module only manages files; the loop that trains lives in `loop.py`.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import yaml

from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path, atomic_write_text
from voxmith.paths import canonical_name, named_folder
from voxmith.training.checkpoints import CheckpointStore
from voxmith.training.config import TrainingConfig, load_config, save_config
from voxmith.training.losses import LossTerm
from voxmith.version import __version__

# Every metrics.csv has these; each loss the engine declares adds its own `<key>_loss` column
# between "epoch" and "total_loss" (runs before declared losses: text_loss, mel_loss).
FIRST_COLUMNS = ("step", "epoch")
LAST_COLUMNS = ("total_loss", "val_loss", "lr")


class TrainingRun:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @classmethod
    def create(cls, training_dir: str | Path, name: str, config: TrainingConfig,
               loss_terms: Sequence[LossTerm] = ()) -> "TrainingRun":
        """A new run folder holding `config` (`loss_terms`: the engine's losses, whose descriptions
        comment their weights); refuses a name that is already taken."""
        folder = named_folder(Path(training_dir), name, "training run")
        name = canonical_name(name)
        if (folder / "config.yaml").exists():
            raise VoxmithError(f"A training run named '{name}' already exists; resume it or pick another name.")
        run = cls(folder)
        save_config(config, run.config_path, loss_terms)
        run.checkpoints.folder.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def open(cls, training_dir: str | Path, name: str) -> "TrainingRun":
        folder = named_folder(Path(training_dir), name, "training run")
        if not (folder / "config.yaml").is_file():
            raise VoxmithError(f"No training run named '{canonical_name(name)}' in '{training_dir}'.")
        return cls(folder)

    @property
    def name(self) -> str:
        return canonical_name(self.folder.name)  # (the folder may be spelt otherwise: see named_folder)

    @property
    def config_path(self) -> Path:
        return self.folder / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.folder / "metrics.csv"

    @property
    def tensorboard_dir(self) -> Path:
        return self.folder / "tensorboard"

    @property
    def checkpoints(self) -> CheckpointStore:
        return CheckpointStore(self.folder / "checkpoints")

    def load_config(self) -> TrainingConfig:
        return load_config(self.config_path)

    def save_config(self, config: TrainingConfig) -> None:
        save_config(config, self.config_path)

    def record_start(self, config: TrainingConfig, resumed_from_step: Optional[int],
                     steps_per_epoch: Optional[int] = None) -> Path:
        """Keep a copy of the settings and the voxmith version this start used (for reproducing it),
        and the steps per epoch the trainer counted (a task's batches need not follow the dataset's
        lines, e.g. a speaker encoder's speakers x utterances)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.folder / "starts" / f"{stamp}-step{resumed_from_step or 0}.yaml"
        record = {"voxmith_version": __version__, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "resumed_from_step": resumed_from_step, "steps_per_epoch": steps_per_epoch,
                  "config": config.to_dict()}
        atomic_write_text(path, yaml.safe_dump(record, sort_keys=False))
        return path

    def counted_steps_per_epoch(self) -> Optional[int]:
        """The steps per epoch the last start counted, or None (never started, or an older voxmith)."""
        starts = sorted((self.folder / "starts").glob("*.yaml"))
        if not starts:
            return None
        try:
            value = (yaml.safe_load(starts[-1].read_text()) or {}).get("steps_per_epoch")
        except (OSError, yaml.YAMLError, AttributeError):
            return None
        return value if isinstance(value, int) and value > 0 else None

    # --- metrics -------------------------------------------------------------------------------

    def metric_columns(self) -> list[str]:
        """The columns of metrics.csv as its header names them (none before the first step)."""
        try:
            with open(self.metrics_path, encoding="utf-8", newline="") as f:
                return next(csv.reader(f), [])
        except FileNotFoundError:
            return []

    def loss_columns(self) -> list[str]:
        """The per-loss columns (`<key>_loss`) of metrics.csv, in the order the engine declares them
        (not the other values a task may add, such as an error rate)."""
        return [c for c in self.metric_columns() if c not in FIRST_COLUMNS + LAST_COLUMNS and c.endswith("_loss")]

    def read_metrics(self) -> list[dict[str, float]]:
        """Rows of metrics.csv as numbers, by column; blank cells (no validation that step, a loss
        not computed that step) become NaN."""
        try:
            text = self.metrics_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        rows = []
        reader = csv.DictReader(io.StringIO(text))
        columns = list(reader.fieldnames or [])
        for raw in reader:
            try:
                rows.append({col: float(raw[col]) if raw.get(col) else math.nan for col in columns})
            except (TypeError, ValueError):
                continue  # a row cut short by a crash
        return rows

    def append_metrics(self, row: dict[str, Optional[float]]) -> None:
        """Append one step's row; the file's columns are the first row's keys (a row with new
        columns rewrites the file with them added, the older rows blank there)."""
        columns = self.metric_columns()
        if columns and set(row) - set(columns):
            columns = _merged(columns, list(row))
            self._rewrite_metrics(columns, self.read_metrics())
        new = not columns
        columns = columns or list(row)
        with open(self.metrics_path, "a", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(columns)
            writer.writerow(["" if row.get(col) is None else _fmt(row[col]) for col in columns])

    def truncate_metrics(self, last_step: int) -> None:
        """Drop rows after `last_step` (they belong to steps a resume is about to redo)."""
        if not self.metrics_path.exists():
            return
        self._rewrite_metrics(self.metric_columns(), [r for r in self.read_metrics() if r["step"] <= last_step])

    def _rewrite_metrics(self, columns: list[str], rows: list[dict[str, float]]) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if math.isnan(row.get(c, math.nan)) else _fmt(row[c]) for c in columns])
        atomic_write_text(self.metrics_path, buf.getvalue())

    def clear_metrics(self) -> None:
        """Delete metrics.csv and the TensorBoard log (for a forced restart)."""
        self.metrics_path.unlink(missing_ok=True)
        shutil.rmtree(self.tensorboard_dir, ignore_errors=True)

    def render_plots(self) -> list[Path]:
        """Write loss.png (train losses and validation) and lr.png from metrics.csv."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        rows = self.read_metrics()
        if not rows:
            return []
        steps = [r["step"] for r in rows]
        written = []
        for filename, series, ylabel in (
            ("loss.png", ("total_loss", *self.loss_columns(), "val_loss"), "loss"),
            ("lr.png", ("lr",), "learning rate"),
        ):
            fig = Figure(figsize=(7, 4))
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            for col in series:
                points = [(s, r[col]) for s, r in zip(steps, rows) if not math.isnan(r.get(col, math.nan))]
                if points:
                    xs, ys = zip(*points)
                    ax.plot(xs, ys, label=col.replace("_", " "), marker="o" if col == "val_loss" else None)
            ax.set_xlabel("step")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{self.name}: {ylabel}")
            if ax.get_legend_handles_labels()[0]:
                ax.legend()
            path = self.folder / filename
            with atomic_path(path) as tmp:
                fig.savefig(tmp, dpi=80)
            written.append(path)
        return written


def _merged(old: list[str], new: list[str]) -> list[str]:
    """`old` columns with `new`'s missing ones inserted before the last columns (total, val, lr)."""
    added = [c for c in new if c not in old]
    cut = next((i for i, c in enumerate(old) if c in LAST_COLUMNS), len(old))
    return old[:cut] + added + old[cut:]


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
