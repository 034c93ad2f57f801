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
from typing import Optional

import yaml

from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path, atomic_write_text
from voxmith.paths import contained_path, validate_name
from voxmith.training.checkpoints import CheckpointStore
from voxmith.training.config import TrainingConfig, load_config, save_config
from voxmith.version import __version__

METRIC_COLUMNS = ("step", "epoch", "text_loss", "mel_loss", "total_loss", "val_loss", "lr")


class TrainingRun:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @classmethod
    def create(cls, training_dir: str | Path, name: str, config: TrainingConfig) -> "TrainingRun":
        """A new run folder holding `config`; refuses a name that is already taken."""
        validate_name(name, "training run")
        folder = contained_path(Path(training_dir), name)
        if (folder / "config.yaml").exists():
            raise VoxmithError(f"A training run named '{name}' already exists; resume it or pick another name.")
        run = cls(folder)
        run.save_config(config)
        run.checkpoints.folder.mkdir(parents=True, exist_ok=True)
        return run

    @classmethod
    def open(cls, training_dir: str | Path, name: str) -> "TrainingRun":
        validate_name(name, "training run")
        folder = contained_path(Path(training_dir), name)
        if not (folder / "config.yaml").is_file():
            raise VoxmithError(f"No training run named '{name}' in '{training_dir}'.")
        return cls(folder)

    @property
    def name(self) -> str:
        return self.folder.name

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

    def record_start(self, config: TrainingConfig, resumed_from_step: Optional[int]) -> Path:
        """Keep a copy of the settings and the voxmith version this start used (for reproducing it)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.folder / "starts" / f"{stamp}-step{resumed_from_step or 0}.yaml"
        record = {"voxmith_version": __version__, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "resumed_from_step": resumed_from_step, "config": config.to_dict()}
        atomic_write_text(path, yaml.safe_dump(record, sort_keys=False))
        return path

    # --- metrics -------------------------------------------------------------------------------

    def read_metrics(self) -> list[dict[str, float]]:
        """Rows of metrics.csv as numbers; blank cells (no validation that step) become NaN."""
        try:
            text = self.metrics_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        rows = []
        for raw in csv.DictReader(io.StringIO(text)):
            try:
                rows.append({col: float(raw[col]) if raw.get(col) else math.nan for col in METRIC_COLUMNS})
            except (TypeError, ValueError):
                continue  # a row cut short by a crash
        return rows

    def append_metrics(self, row: dict[str, Optional[float]]) -> None:
        new = not self.metrics_path.exists()
        with open(self.metrics_path, "a", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(METRIC_COLUMNS)
            writer.writerow(["" if row.get(col) is None else _fmt(row[col]) for col in METRIC_COLUMNS])

    def truncate_metrics(self, last_step: int) -> None:
        """Drop rows after `last_step` (they belong to steps a resume is about to redo)."""
        if not self.metrics_path.exists():
            return
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(METRIC_COLUMNS)
        for row in self.read_metrics():
            if row["step"] <= last_step:
                writer.writerow(["" if math.isnan(row[c]) else _fmt(row[c]) for c in METRIC_COLUMNS])
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
            ("loss.png", ("total_loss", "text_loss", "mel_loss", "val_loss"), "loss"),
            ("lr.png", ("lr",), "learning rate"),
        ):
            fig = Figure(figsize=(7, 4))
            FigureCanvasAgg(fig)
            ax = fig.add_subplot()
            for col in series:
                points = [(s, r[col]) for s, r in zip(steps, rows) if not math.isnan(r[col])]
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


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(float(value))
