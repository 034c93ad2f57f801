"""Training settings: a typed, sectioned config stored as commented YAML in each run folder.

`TrainingConfig` holds everything that decides how a run trains; `defaults_for` picks sensible
values from the dataset size, and `validate` lists problems in plain words before any work starts.
This module does no training and knows nothing about any engine's model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
import yaml

from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_write_text
from voxmith.paths import validate_name
from voxmith.training.losses import LEGACY_NAMES, LossTerm, weight_problems
from voxmith.training.optimizers import optimizer_problems

# ai-voice-cloning's learning-rate milestones (in epochs), tuned for runs of about this many epochs.
AIVC_MILESTONES_EPOCHS = (2, 4, 9, 18, 25, 33, 50, 59)
AIVC_SCHEDULE_EPOCHS = 60
SCHEDULERS = ("multistep", "cosine")


def _help(text: str) -> dict:
    return {"help": text}


def scaled_milestones(epochs: int) -> list[int]:
    """The ai-voice-cloning milestones stretched or squeezed to a run of `epochs` epochs."""
    scale = epochs / AIVC_SCHEDULE_EPOCHS
    scaled = {max(1, round(m * scale)) for m in AIVC_MILESTONES_EPOCHS}
    return sorted(m for m in scaled if m < epochs)


@dataclass
class DataConfig:
    dataset: str = field(default="", metadata=_help("name of the dataset folder under datasets/"))
    # No default: the training package knows no engine (the studio names the default engine).
    engine: str = field(default="", metadata=_help("engine whose model is fine-tuned (piper-vc, tortoise...)"))


@dataclass
class ScheduleConfig:
    epochs: int = field(default=60, metadata=_help("passes over the training lines"))
    batch_size: int = field(default=16, metadata=_help("lines per batch"))
    grad_accumulation: int = field(
        default=1, metadata=_help("batches whose gradients are summed before each optimizer step"))
    learning_rate: float = field(default=1e-5, metadata=_help("peak learning rate of the AdamW optimizer"))
    scheduler: str = field(
        default="multistep", metadata=_help("learning-rate schedule: multistep or cosine"))
    milestones: list[int] = field(
        default_factory=lambda: scaled_milestones(60),
        metadata=_help("epochs at which multistep multiplies the learning rate by gamma"))
    warmup_steps: int = field(
        default=0, metadata=_help("optimizer steps over which the learning rate ramps up from 0"))
    gamma: float = field(default=0.5, metadata=_help("multistep factor applied at each milestone"))
    max_grad_norm: float = field(
        default=0.0, metadata=_help("clip the gradient's norm to this before each step (0 = no clipping)"))


@dataclass
class LossConfig:
    # The engine declares its losses (see losses.py); `train init` writes its defaults here.
    weights: dict[str, float] = field(
        default_factory=dict,
        metadata=_help("weight of each loss the engine's model returns in the total that is minimised "
                       "(a loss left out keeps the engine's default weight)"))
    # Read from a config written before engines declared their losses (text_weight/mel_weight):
    # those old names, ignored by an engine that has no such loss. Never written to config.yaml.
    legacy_names: tuple = field(default=(), metadata={"internal": True})


@dataclass
class CheckpointConfig:
    save_every_steps: int = field(default=500, metadata=_help("optimizer steps between checkpoints"))
    validate_every_steps: int = field(
        default=500, metadata=_help("optimizer steps between validation passes (0 = never)"))
    keep_last: int = field(
        default=2, metadata=_help("checkpoints kept besides the best one; older ones are deleted"))


@dataclass
class MiscConfig:
    mixed_precision: bool = field(
        default=False, metadata=_help("compute in bfloat16 where safe (faster, less memory)"))
    seed: int = field(default=0, metadata=_help("random seed, for reproducible runs"))
    optimizer: str = field(
        default="adamw",
        metadata=_help("adamw, or adamw8bit: 8-bit AdamW from bitsandbytes, less GPU memory "
                       "(CUDA only; install voxmith[cuda])"))


@dataclass
class LoraConfig:
    enabled: bool = field(default=False, metadata=_help("train small LoRA adapters instead of all weights"))
    rank: int = field(default=16, metadata=_help("rank of each adapter (higher = more capacity)"))
    alpha: float = field(default=32.0, metadata=_help("adapter scaling; the update is scaled by alpha/rank"))
    target_modules: list[str] = field(
        default_factory=lambda: ["attn", "mlp"],
        metadata=_help("name fragments of the layers that get adapters"))


@dataclass
class EngineConfig:
    # Settings only one engine's training knows (sv2tts: its stage and official hparams), set with
    # `train init --set NAME=VALUE`; the engine parses and checks them (`Engine.parse_training_settings`),
    # so this module keeps them as plain YAML values.
    settings: dict[str, Any] = field(
        default_factory=dict, metadata={**_help("the engine's own training settings (train init --set NAME=VALUE)"),
                                        "free": True})


@dataclass
class TrainingConfig:
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    checkpoints: CheckpointConfig = field(default_factory=CheckpointConfig)
    misc: MiscConfig = field(default_factory=MiscConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "the training config") -> "TrainingConfig":
        """Build from plain data (e.g. parsed YAML); missing fields keep their defaults."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise VoxmithError(f"{source} must be a mapping of sections, not {type(data).__name__}.")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise VoxmithError(f"{source} has unknown section(s) {', '.join(unknown)}; "
                               f"known sections are {', '.join(sections)}.")
        data = {**data, "losses": _upgrade_losses(data.get("losses"))}
        built = {name: _section_from_dict(f.default_factory, data.get(name), f"{source}, section '{name}'")
                 for name, f in sections.items()}
        return cls(**built)


def _upgrade_losses(data: Any) -> Any:
    """An old `losses` section (text_weight, mel_weight) as named weights, marked as old."""
    if not isinstance(data, dict):
        return data
    old = {key[:-len("_weight")]: value for key, value in data.items()
           if key.endswith("_weight") and key[:-len("_weight")] in LEGACY_NAMES}
    if not old:
        return data
    rest = {key: value for key, value in data.items() if key[:-len("_weight")] not in old}
    weights = {**old, **(rest.pop("weights", None) or {})}
    return {**rest, "weights": weights, "legacy_names": tuple(old)}


def _section_from_dict(section_type: Any, data: Any, where: str) -> Any:
    default = section_type()
    if data is None:
        return default
    if not isinstance(data, dict):
        raise VoxmithError(f"{where} must be a mapping of settings.")
    internal = {f.name: data[f.name] for f in dataclasses.fields(default)
                if f.metadata.get("internal") and f.name in data}
    data = {k: v for k, v in data.items() if k not in internal}
    names = [f.name for f in dataclasses.fields(default) if not f.metadata.get("internal")]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise VoxmithError(f"{where} has unknown setting(s) {', '.join(unknown)}; "
                           f"known settings are {', '.join(names)}.")
    free = {f.name for f in dataclasses.fields(default) if f.metadata.get("free")}
    values = {name: _free(data[name], f"{where}: '{name}'") if name in free
              else typed_value(data[name], getattr(default, name), f"{where}: '{name}'")
              for name in names if name in data}
    return dataclasses.replace(default, **values, **internal)


def _free(value: Any, where: str) -> dict:
    """A mapping of names to any YAML values (its owner, an engine, checks the values)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise VoxmithError(f"{where} should be names with values, like {{stage: vocoder}}, not {value!r}.")
    return dict(value)


def typed_value(value: Any, default: Any, where: str) -> Any:
    """`value` checked against the type of a setting's default (bool, int, float, str, a dict of
    numbers, a list of ints or of strs: a config's only types; a whole number where a float is
    expected is read as one, NaN and infinities are refused); else
    VoxmithError "<where> should be <what the default is>, not <value>". Engines' own typed settings
    use it too, handling their other types first."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, dict):  # named numbers (loss weights)
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in value.items())
        value = {k: float(v) for k, v in value.items()} if ok else value
    else:  # a list: its items must match the default's item type
        item_type = int if all(isinstance(x, int) for x in default) and default else str
        ok = isinstance(value, list) and all(
            isinstance(x, item_type) and not isinstance(x, bool) for x in value)
        if ok:
            value = list(value)
    if not ok:
        raise VoxmithError(f"{where} should be {_kind(default)}, not {value!r}.")
    return value


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "text"
    if isinstance(default, dict):
        return "names with numbers, like {text: 0.01, mel: 1.0}"
    return "a list like [2, 4, 9]" if default and isinstance(default[0], int) else "a list like [attn, mlp]"


def to_yaml(config: TrainingConfig, loss_terms: Sequence[LossTerm] = ()) -> str:
    """The config as YAML with a comment above every setting saying what it does (each loss
    weight's from `loss_terms`, the engine's declared losses, when given)."""
    lines = ["# voxmith training config. Edit and resume; see each comment for what a setting does.", ""]
    helps = {t.key: f"{t.help} (default {t.weight:g})" for t in loss_terms}
    for section in dataclasses.fields(config):
        lines.append(f"{section.name}:")
        values = getattr(config, section.name)
        for f in dataclasses.fields(values):
            if f.metadata.get("internal"):
                continue
            lines.append(f"  # {f.metadata.get('help', '')}")
            value = getattr(values, f.name)
            if isinstance(value, dict) and value and helps:  # one commented line per loss weight
                lines.append(f"  {f.name}:")
                for key, weight in value.items():
                    if key in helps:
                        lines.append(f"    # {helps[key]}")
                    lines.extend(f"    {line}" for line in _dump({key: weight}))
                continue
            lines.extend(f"  {line}" for line in _dump({f.name: value}))
        lines.append("")
    return "\n".join(lines)


def _dump(mapping: dict) -> list[str]:
    return yaml.safe_dump(mapping, default_flow_style=False, sort_keys=False).splitlines()


def from_yaml(text: str, source: str = "the training config") -> TrainingConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise VoxmithError(f"{source} is not valid YAML: {err}. Fix the file or delete it.") from None
    return TrainingConfig.from_dict(data, source)


def save_config(config: TrainingConfig, path: str | Path, loss_terms: Sequence[LossTerm] = ()) -> None:
    atomic_write_text(path, to_yaml(config, loss_terms))


def load_config(path: str | Path) -> TrainingConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VoxmithError(f"No training config at '{path}'.") from None
    return from_yaml(text, source=f"'{path}'")


def steps_per_epoch(train_lines: int, batch_size: int, grad_accumulation: int, world_size: int = 1) -> int:
    """Optimizer steps in one epoch (the last, partial batch and accumulation group count).
    Each step takes world_size × grad_accumulation batches (see `distributed.plan_step`)."""
    batches = math.ceil(train_lines / max(1, batch_size))
    return max(1, math.ceil(batches / (max(1, grad_accumulation) * max(1, world_size))))


def defaults_for(dataset_lines: int, epochs: int, dataset: str = "", engine: str = "") -> TrainingConfig:
    """Sensible settings for a dataset of `dataset_lines` training lines trained for `epochs`.

    Batches hold up to 16 lines (never more than the dataset); small batches are accumulated to an
    effective batch of about 16; checkpoints and validation land about ten times per run.
    """
    lines = max(1, dataset_lines)
    epochs = max(1, epochs)
    batch_size = min(16, lines)
    grad_accumulation = max(1, min(4, 16 // batch_size))
    total_steps = epochs * steps_per_epoch(lines, batch_size, grad_accumulation)
    every = max(1, total_steps // 10)
    return TrainingConfig(
        data=DataConfig(dataset=dataset, engine=engine),
        schedule=ScheduleConfig(epochs=epochs, batch_size=batch_size, grad_accumulation=grad_accumulation,
                                milestones=scaled_milestones(epochs),
                                warmup_steps=min(100, total_steps // 20)),
        checkpoints=CheckpointConfig(save_every_steps=every, validate_every_steps=every),
    )


def validate(config: TrainingConfig, train_lines: int, validation_lines: int, *, world_size: int = 1,
             device: Union[str, torch.device, None] = None,
             loss_terms: Optional[Sequence[LossTerm]] = None) -> list[str]:
    """Everything wrong with `config` for this dataset, one plain sentence each (empty = fine).
    `world_size`: processes that will train together (torchrun's --nproc-per-node × nodes);
    `device`: where training will run (None: the best device of this machine); `loss_terms`: the
    losses the run's engine declares (None: loss weights are only checked for sign)."""
    problems: list[str] = []
    s, c, losses, lora = config.schedule, config.checkpoints, config.losses, config.lora
    if config.data.dataset:
        try:
            validate_name(config.data.dataset, "dataset")
        except VoxmithError as err:
            problems.append(str(err))
    else:
        problems.append("No dataset is set; put the dataset's name under data: dataset.")
    if train_lines < 1:
        problems.append("The dataset has no training lines; transcribe some clips first.")
    if s.epochs < 1:
        problems.append(f"epochs is {s.epochs}; train for at least 1 epoch.")
    if s.batch_size < 1:
        problems.append(f"batch size is {s.batch_size}; use at least 1.")
    elif train_lines >= 1 and s.batch_size > train_lines:
        problems.append(f"batch size {s.batch_size} is larger than the {train_lines} training lines; "
                        f"use {train_lines} or fewer.")
    if s.grad_accumulation < 1:
        problems.append(f"gradient accumulation is {s.grad_accumulation}; use 1 or more.")
    batches = math.ceil(train_lines / s.batch_size) if s.batch_size >= 1 and train_lines >= 1 else 0
    if world_size > 1 and 0 < batches < world_size:
        problems.append(f"an epoch has only {batches} batch(es) for {world_size} training processes, so some "
                        f"would only wait; use a batch size of {max(1, train_lines // world_size)} or less, "
                        "or fewer processes.")
    if not s.learning_rate > 0:
        problems.append(f"learning rate is {s.learning_rate}; it must be above 0 (try 1e-5).")
    elif s.learning_rate > 1e-2:
        problems.append(f"learning rate {s.learning_rate} is far too high for fine-tuning; try 1e-5.")
    if s.scheduler not in SCHEDULERS:
        problems.append(f"scheduler '{s.scheduler}' is unknown; use {' or '.join(SCHEDULERS)}.")
    if s.milestones != sorted(set(s.milestones)):
        problems.append(f"milestones {s.milestones} must be increasing without repeats.")
    late = [m for m in s.milestones if m < 1 or m >= s.epochs]
    if s.scheduler == "multistep" and late:
        problems.append(f"milestone(s) {late} fall outside the run's {s.epochs} epochs and never apply.")
    if s.warmup_steps < 0:
        problems.append(f"warmup steps is {s.warmup_steps}; use 0 or more.")
    if not 0 < s.gamma <= 1:
        problems.append(f"gamma {s.gamma} must be above 0 and at most 1 (0.5 halves the rate).")
    if s.max_grad_norm < 0:
        problems.append(f"max grad norm {s.max_grad_norm} must be 0 (no clipping) or more.")
    if loss_terms is not None:  # the engine's declared losses: names are checked too
        engine = f"the {config.data.engine} engine" if config.data.engine else "the run's engine"
        problems.extend(weight_problems(loss_terms, losses.weights, engine, losses.legacy_names))
    else:
        bad = [name for name, value in losses.weights.items() if not math.isfinite(value) or value < 0]
        if bad:
            problems.append(f"loss weight(s) {', '.join(bad)} must be 0 or more.")
    if c.save_every_steps < 1:
        problems.append(f"save every {c.save_every_steps} steps is not possible; use 1 or more.")
    if c.validate_every_steps < 0:
        problems.append("validate every steps must be 0 (never) or more.")
    elif c.validate_every_steps > 0 and validation_lines < 1:
        problems.append(f"validation is set every {c.validate_every_steps} steps but the dataset has no "
                        "validation lines; set validate_every_steps to 0 or add validation lines.")
    if c.keep_last < 1:
        problems.append(f"keep last {c.keep_last} checkpoints would delete every checkpoint; use 1 or more.")
    problems.extend(optimizer_problems(config.misc.optimizer, device))
    if lora.enabled:
        if lora.rank < 1:
            problems.append(f"LoRA rank {lora.rank} must be 1 or more.")
        if not lora.alpha > 0:
            problems.append(f"LoRA alpha {lora.alpha} must be above 0.")
        if not lora.target_modules:
            problems.append("LoRA is enabled but target_modules is empty; name the layers to adapt.")
    return problems
