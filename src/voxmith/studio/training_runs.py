"""Training runs in the workspace: create a run for a dataset, check it, train it, describe it, and
turn its checkpoints into the fine-tuned weights a voice speaks with.

The loop, checkpoints and run folders are `voxmith.training`; the model being trained is the
engine's (`Engine.training_task`). This module connects the two to the workspace's datasets and
voices, and is what the CLI and web UI call.
"""

from __future__ import annotations

import math
import os
from shlex import quote
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from voxmith.datasets import DatasetLibrary
from voxmith.engines import (Finetune, FinetuneSpec, LoraSpec, TrainingLine, available_engines, create_engine,
                             engine_class, resolve_device)
from voxmith.engines.registry import DEFAULT_ENGINE
from voxmith.errors import VoxmithError
from voxmith.paths import canonical_name, named_folder
from voxmith.progress import ProgressCallback
from voxmith.training import (CheckpointInfo, TrainingConfig, TrainingResult, TrainingRun, defaults_for,
                              train_loop, validate)
from voxmith.studio.voices import VoiceLibrary
from voxmith.training.config import steps_per_epoch
from voxmith.training.losses import LossTerm, default_weights
from voxmith.training.lock import LockHolder, RunBusy, TrainerLock

CHECKPOINT_CHOICES = ("latest", "best")
OTHER_SPEAKER_FLAG = "unlike the main speaker"  # a dataset segment that sounds like someone else


@dataclass
class RunSummary:
    """What `train list` / `train show` print about a run."""

    name: str
    dataset: str
    engine: str
    step: int  # optimizer steps done (last metrics row)
    total_steps: Optional[int]  # None when the dataset is gone
    epochs: int
    lora: bool
    latest: Optional[CheckpointInfo]
    best: Optional[CheckpointInfo]
    checkpoints: List[CheckpointInfo] = field(default_factory=list)
    last_loss: Optional[float] = None
    plots: List[Path] = field(default_factory=list)
    voices: List[str] = field(default_factory=list)  # voices that speak with this run
    folder: Optional[Path] = None
    validates: bool = True  # False: no validation lines, so never validated and no "best" checkpoint

    @property
    def progress_text(self) -> str:
        if self.total_steps:
            return f"step {self.step}/{self.total_steps} ({100 * self.step / self.total_steps:.0f} %)"
        return f"step {self.step}"


class TrainingRuns:
    """The workspace's `training/` folder, with the datasets runs train on and the voices that
    speak with them. `device_request` ("auto", "cpu", "cuda:1"...) is resolved when training starts;
    `models_dir` is where engines find their weights. `check_finetune(voice, finetune, engine,
    progress)` (the studio's `Studio.check_finetune`) checks weights on a voice before `use` gives
    them to it: its notes, None when the engine checks nothing; it raises to refuse them."""

    def __init__(self, root: Path, datasets: DatasetLibrary, voices: VoiceLibrary, *,
                 device_request: str = "auto", models_dir: Optional[Path] = None,
                 check_finetune: Optional[Callable[..., Optional[dict]]] = None):
        self.root = Path(root)
        self.datasets = datasets
        self.voices = voices
        self.device_request = device_request
        self.models_dir = models_dir
        self.check_finetune = check_finetune

    # --- creating and checking ------------------------------------------------------------------

    def names(self) -> List[str]:
        # a name spelt by two folders (NFC and NFD) is one name, listed once (and refused when used)
        return sorted({canonical_name(p.name) for p in self.root.iterdir() if (p / "config.yaml").is_file()})

    def open(self, name: str) -> TrainingRun:
        # A refused name (an invisible character), a folder to rename or two folders spelling the name
        # are said as they are, not as "no run" with a `train init` that would be refused in turn.
        folder = named_folder(self.root, name, "training run")
        if not (folder / "config.yaml").is_file():
            name = canonical_name(name)
            known = ", ".join(self.names()) or "none yet"
            raise VoxmithError(f"No training run named '{name}'. Runs: {known}. "
                               f"Create one with `voxmith train init {quote(name)} --dataset NAME`.")
        return TrainingRun(folder)

    def lines(self, dataset: str) -> tuple[tuple[TrainingLine, ...], tuple[TrainingLine, ...]]:
        """The dataset's (train, validation) lines, as its lists say."""
        data = self.datasets.get(dataset)
        record = data.load()
        split: Dict[str, List[TrainingLine]] = {"train": [], "validation": []}
        for segment in record["segments"]:
            if segment.get("split") in split:
                split[segment["split"]].append(TrainingLine(data.path / segment["file"], segment["transcript"]))
        return tuple(split["train"]), tuple(split["validation"])

    def init(self, name: str, dataset: str, engine: str = DEFAULT_ENGINE, epochs: Optional[int] = None,
             changes: Optional[Dict[str, Dict[str, Any]]] = None,
             settings: Optional[Dict[str, Any]] = None) -> TrainingRun:
        """Create run `name` with defaults computed from the dataset, then `changes` applied
        ({section: {setting: value}}, as in config.yaml). `settings`: the engine's own training
        settings (`--set NAME=VALUE`, checked by the engine). Refuses invalid settings."""
        cls = engine_class(engine)
        if not cls.supports_training:
            raise VoxmithError(f"The {engine} engine cannot be fine-tuned.")
        if epochs is not None and epochs < 1:  # 0 or less used to become the engine's default, silently
            raise VoxmithError(f"epochs is {epochs}; train for at least 1 epoch (or leave it out for the "
                               f"{engine} engine's default).")
        parsed = cls.parse_training_settings(settings)
        dataset = canonical_name(dataset)  # in its one spelling, as the config keeps it (lines() checks it exists)
        train, validation = self.lines(dataset)
        config = defaults_for(len(train), _default_epochs(cls, len(train)) if epochs is None else epochs,
                              dataset=dataset, engine=engine)
        if not validation:
            config.checkpoints.validate_every_steps = 0
        config.losses.weights = default_weights(cls.training_losses)  # written out, to be seen and edited
        config.engine.settings = parsed
        merged = config.to_dict()
        # The engine's defaults, then the user's.
        for layer in (cls.training_defaults_for(parsed, len(train)), changes or {}):
            for section, values in layer.items():
                for key, value in values.items():
                    if isinstance(value, dict):  # named values (loss weights): change only those named
                        merged.setdefault(section, {}).setdefault(key, {}).update(value)
                    else:
                        merged.setdefault(section, {})[key] = value
        config = TrainingConfig.from_dict(merged, "the settings given")
        problems = validate(config, len(train), len(validation), loss_terms=cls.training_losses)
        if problems:
            raise VoxmithError("The training settings have problems:\n  - " + "\n  - ".join(problems))
        return TrainingRun.create(self.root, name, config, cls.training_losses)

    def trainable_engines(self) -> List[str]:
        """The installed engines that can be fine-tuned (for the shells' choices)."""
        names = []
        for engine in available_engines():
            try:
                if engine_class(engine).supports_training:
                    names.append(engine)
            except VoxmithError:  # an engine whose dependencies are missing
                continue
        return names

    def loss_terms(self, engine: str) -> Tuple[LossTerm, ...]:
        """The losses `engine`'s training minimises, with their default weights (what `init`'s
        `changes={"losses": {"weights": ...}}` may set)."""
        return tuple(engine_class(engine).training_losses)

    def check(self, name: str) -> List[str]:
        """Every problem with run `name`'s config for its dataset and engine, in words."""
        config = self.open(name).load_config()
        try:
            train, validation = self.lines(config.data.dataset)
        except VoxmithError as err:
            return [str(err)]
        return self._problems(config, train, validation)

    @staticmethod
    def _problems(config: TrainingConfig, train, validation) -> List[str]:
        try:
            cls = engine_class(config.data.engine)
        except VoxmithError as err:
            return validate(config, len(train), len(validation)) + [str(err)]
        problems = validate(config, len(train), len(validation), loss_terms=cls.training_losses)
        if not cls.supports_training:
            problems.append(f"The {config.data.engine} engine cannot be fine-tuned.")
        try:
            cls.parse_training_settings(config.engine.settings)
        except VoxmithError as err:
            problems.append(str(err))
        return problems

    # --- training -------------------------------------------------------------------------------

    def train(self, name: str, force_restart: bool = False, commands: Any = None,
              progress: Optional[ProgressCallback] = None, handle_sigint: bool = True) -> TrainingResult:
        """Train run `name`, resuming from its latest checkpoint unless `force_restart`."""
        run = self.open(name)
        self.refuse_if_busy(name)  # now, before the engine prepares anything (train_loop locks)
        config = run.load_config()
        train, validation = self.lines(config.data.dataset)
        problems = self._problems(config, train, validation)
        if problems:
            raise VoxmithError(f"Run '{name}' cannot start:\n  - " + "\n  - ".join(problems)
                               + f"\nEdit {run.config_path} and try again.")
        device = _rank_device(resolve_device(self.device_request))
        engine = create_engine(config.data.engine, device, self.models_dir)
        lora = config.lora
        spec = FinetuneSpec(
            train=train, validation=validation, batch_size=config.schedule.batch_size, seed=config.misc.seed,
            cache_dir=self.datasets.get(config.data.dataset).path / ".cache" / "training",
            lora=LoraSpec(lora.rank, lora.alpha, tuple(lora.target_modules)) if lora.enabled else None,
            epochs=config.schedule.epochs,
            settings=type(engine).parse_training_settings(config.engine.settings),
            run_weights=lambda other: self.finetune(other)[0],
            speakers=self.speakers)
        task = engine.training_task(spec, progress)
        return train_loop(task, run, config=config, force_restart=force_restart, commands=commands,
                          progress=progress, handle_sigint=handle_sigint)

    def speakers(self) -> Tuple[Tuple[str, Tuple[Path, ...]], ...]:
        """Every speaker of the workspace with their audio files, by name: a voice's clips, a
        dataset's segments in its training or validation list (not those flagged as another
        speaker); a voice and a dataset of the same name are one speaker (`FinetuneSpec.speakers`)."""
        found: Dict[str, List[Path]] = {}
        for voice in self.voices.list():
            found.setdefault(voice.name, []).extend(voice.clip_paths)
        for name in self.datasets.names():
            try:
                data = self.datasets.get(name)
                segments = data.load()["segments"]
            # a dataset still being prepared (or damaged, or two folders spelling its name) has nothing
            # to give yet
            except VoxmithError:
                continue
            files = [data.path / s["file"] for s in segments if s.get("split") in ("train", "validation")
                     and not any(f.startswith(OTHER_SPEAKER_FLAG) for f in s.get("flags", []))]
            found.setdefault(name, []).extend(p for p in files if p.is_file())
        return tuple((name, tuple(files)) for name, files in sorted(found.items()) if files)

    def refuse_if_busy(self, name: str) -> None:
        """Raise RunBusy, naming the process, when run `name` is being trained right now."""
        holder = self.trainer(name)
        if holder is not None:
            raise RunBusy(name, holder)

    def trainer(self, name: str) -> Optional[LockHolder]:
        """Who is training run `name` right now (any process on this machine), or None."""
        return TrainerLock(self.open(name).folder).holder()

    # --- describing -----------------------------------------------------------------------------

    def summary(self, name: str) -> RunSummary:
        run = self.open(name)
        name, config = run.name, run.load_config()
        rows = run.read_metrics()
        counted = run.counted_steps_per_epoch()  # what the trainer counted, else estimated from the lines
        try:
            if counted is None:
                train, _ = self.lines(config.data.dataset)
                counted = steps_per_epoch(len(train), config.schedule.batch_size, config.schedule.grad_accumulation)
            total = config.schedule.epochs * counted
        except VoxmithError:
            total = None
        store = run.checkpoints
        loss = rows[-1]["total_loss"] if rows else None
        return RunSummary(
            name=name, dataset=config.data.dataset, engine=config.data.engine,
            step=int(rows[-1]["step"]) if rows else 0, total_steps=total, epochs=config.schedule.epochs,
            lora=config.lora.enabled, latest=store.latest(), best=store.best(), checkpoints=store.list(),
            validates=config.checkpoints.validate_every_steps > 0,
            last_loss=None if loss is None or math.isnan(loss) else loss,
            plots=[p for p in (run.folder / "loss.png", run.folder / "lr.png") if p.exists()],
            voices=[v.name for v in self.voices.list()
                    if canonical_name((v.listed_metadata().get("finetune") or {}).get("run") or "") == name],
            folder=run.folder)

    def summaries(self) -> List[RunSummary | tuple[str, VoxmithError]]:
        """Each run's summary, or (its name, why it cannot be read: a config.yaml broken by hand, two
        folders spelling one name), so that one such run hides none of the others."""
        read: List[RunSummary | tuple[str, VoxmithError]] = []
        for name in self.names():
            try:
                read.append(self.summary(name))
            except VoxmithError as err:
                read.append((name, err))
        return read

    # --- using ----------------------------------------------------------------------------------

    def find_checkpoint(self, name: str, which: str | int = "latest") -> CheckpointInfo:
        """Checkpoint `which` of run `name`: "latest", "best" (lowest validation loss) or a step."""
        return self._checkpoint(self.open(name), which)

    @staticmethod
    def _checkpoint(run: TrainingRun, which: str | int) -> CheckpointInfo:
        name, store = run.name, run.checkpoints
        if str(which) == "latest":
            found = store.latest()
        elif str(which) == "best":
            found = store.best()
            if found is None and store.latest() is not None:
                raise VoxmithError(f"Run '{name}' has no validated checkpoint, so there is no best one; "
                                   "use --checkpoint latest or a step number.")
        else:
            step = _parse_step(which)
            found = next((info for info in store.list() if info.step == step), None)
            if found is None:
                steps = ", ".join(str(info.step) for info in store.list()) or "none"
                raise VoxmithError(f"Run '{name}' has no checkpoint at step {step}; it has: {steps}.")
        if found is None:
            raise VoxmithError(f"Run '{name}' has no checkpoint yet; train it first with "
                               f"`voxmith train run {quote(name)}`.")
        return found

    def finetune(self, name: str, which: str | int = "latest") -> tuple[Finetune, str, CheckpointInfo]:
        """The fine-tuned weights of run `name` at checkpoint `which`, the run's engine, and the checkpoint."""
        run = self.open(name)
        name, config = run.name, run.load_config()
        info = self._checkpoint(run, which)
        stat = info.path.stat()
        return Finetune(
            key=f"{run.folder}:{info.step}:{stat.st_mtime_ns}:{stat.st_size}",
            description=f"run '{name}', step {info.step}" + (f" ({which})" if str(which) in CHECKPOINT_CHOICES else ""),
            load_state=lambda: _load_model_state(info.path),
            config=config.to_dict(),
        ), config.data.engine, info

    def use(self, voice: str, run: Optional[str], which: str | int = "latest",
            progress: Optional[ProgressCallback] = None) -> Optional[dict]:
        """Make `voice` speak with run `run`'s weights, or stock weights if `run` is None. The
        checkpoint is checked now, and so are the weights on the voice (`check_finetune`: for
        piper-vc the intelligibility guard, whose notes are kept with the choice as "check");
        refused weights leave the voice's setting as it was."""
        target = self.voices.get(voice)
        if run is None:
            target.update_metadata(finetune=None)
            return None
        if str(which) not in CHECKPOINT_CHOICES:
            which = _parse_step(which)
        run = canonical_name(run)  # kept in its one spelling (finetune() finds a folder spelt either way)
        finetune, engine, info = self.finetune(run, which)
        choice: Dict[str, Any] = {"run": run, "checkpoint": which, "engine": engine}
        notes = self.check_finetune(target, finetune, engine, progress) if self.check_finetune else None
        if notes is not None:  # what the check found for this step's weights (a later "latest" is checked when used)
            choice["check"] = {"step": info.step, **notes}
        target.update_metadata(finetune=choice)
        return {**choice, "step": info.step}


def _default_epochs(engine: type, train_lines: int) -> int:
    """The epochs a new run of `engine` trains when none are given (see `Engine.training_steps`)."""
    if engine.training_steps:
        batches = defaults_for(train_lines, 1, engine=engine.name).schedule
        per_epoch = steps_per_epoch(train_lines, batches.batch_size, batches.grad_accumulation)
        return max(1, math.ceil(engine.training_steps / per_epoch))
    return int(engine.training_epochs)


def _parse_step(which: str | int) -> int:
    try:
        step = int(which)
    except (TypeError, ValueError):
        raise VoxmithError(f"Checkpoint '{which}' is not latest, best or a step number.") from None
    if step < 1:
        raise VoxmithError(f"Checkpoint step {step} must be 1 or more.")
    return step


def _load_model_state(path: Path) -> Dict[str, Any]:
    import torch

    # mmap: a full tortoise checkpoint also holds GBs of optimizer state that is never read here.
    try:
        payload = torch.load(path, map_location="cpu", mmap=True, weights_only=False)
    except Exception as err:
        raise VoxmithError(f"Checkpoint '{path}' cannot be read ({err}).") from None
    if not isinstance(payload, dict) or "model" not in payload:
        raise VoxmithError(f"'{path}' is not a voxmith training checkpoint.")
    return payload["model"]


def _rank_device(device: str) -> str:
    """Under torchrun each process trains on its own GPU (cuda:LOCAL_RANK)."""
    local_rank = os.environ.get("LOCAL_RANK")
    if device.startswith("cuda") and local_rank is not None and ":" not in device:
        return f"cuda:{int(local_rank)}"
    return device
