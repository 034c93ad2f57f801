"""The interface every synthesis engine implements.

An engine does two things:
1. `prepare_conditioning(clips)`: turn a voice's clips into whatever it conditions on
   (embeddings, statistics, latents) as a dict of numpy arrays. The studio caches the result per
   voice, keyed by the clips' fingerprint and `cache_key()`, so engines never manage caches.
2. `synthesize(text, conditioning, settings, seed=..., candidates=...)`: return candidates,
   best first.
Optionally, 3. `converter(sample, conditioning, settings)` (engines with `supports_convert`): a
`Converter` that turns chunks of someone else's recording into the conditioned voice.

Fine-tuned weights are part of the request, never swapped into a shared model:
`engine.with_finetune(finetune)` gives a separate engine object that owns those weights (with its
own `cache_key()`), and the stock engine stays as it was. So requests with different voices or
fine-tunes may run at the same time from several threads; each gets exactly what it would get
alone (an engine whose maths uses process-wide state, such as torch's global RNG, serialises its
own synthesis to keep that promise).

Engines never touch the workspace, the CLI or the UI; they receive audio and return audio.
"""

from __future__ import annotations

import dataclasses
import numbers
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Optional, Protocol, Sequence, Tuple, Type

import numpy as np

from voxmith.audio.io import Audio
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback
from voxmith.training.losses import LossTerm

Conditioning = Dict[str, np.ndarray]
# Held by engine code that seeds or draws from torch's global RNG (`torch.manual_seed`,
# `torch.random.fork_rng`), so that two threads never interleave on it: fork_rng restores the state
# it saved on exit, which would rewind a stream another thread is drawing from.
TORCH_RNG_LOCK = threading.RLock()
# Fine-tuned variants an engine keeps loaded (least recently used dropped first): each may hold a
# copy of a large model, and a web UI or server rarely alternates between more than two.
FINETUNES_KEPT = 2
# The key under which `Engine.check_finetune` says, in words, why weights must not be used.
FINETUNE_REFUSED = "finetune.refused"


@dataclass(frozen=True)
class DeviceNeeds:
    """What hardware an engine needs; shown to users before they pick it."""

    runs_on_cpu: bool = True
    gpu_recommended: bool = False
    min_gpu_memory_gb: float = 0.0
    note: str = ""


@dataclass(frozen=True)
class EngineOption:
    """A setting an engine offers as an option of its own in the shells (`voxmith speak --NAME
    VALUE`), besides the generic `--set NAME=VALUE` every setting has."""

    setting: str  # a field of the engine's settings class; the option is --SETTING (underscores as dashes)
    help: str
    choices: Tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.setting.replace("_", "-")


@dataclass(frozen=True)
class ModelFile:
    """One file of an engine's models and where it is on this machine (`Engine.model_files`)."""

    name: str
    purpose: str
    required: bool = True  # needed to speak at all; others only for some settings or for training
    approx_bytes: int = 0  # for estimates shown before a download
    path: Optional[Path] = None  # where it was found; None: not on this machine
    found_by: str = ""  # which search rule found it (e.g. "workspace", "Hugging Face cache", "package")
    downloadable: bool = True  # False: it comes with an installed package, reinstall it instead

    @classmethod
    def located(cls, name: str, purpose: str, required: bool, approx_bytes: int,
                found: Optional[Any]) -> "ModelFile":
        """The entry for a file an engine's search found (`found` has `.path` and `.source`) or not (None)."""
        return cls(name, purpose, required, approx_bytes,
                   found.path if found else None, found.source if found else "")


@dataclass
class EngineSettings:
    """Base class for an engine's settings dataclass. Subclasses add typed fields with defaults."""

    # Settings added without a new engine version (enrollment unchanged), with the value that made
    # the results recorded before them: a result's sidecar that lacks one is reproduced at it.
    EARLIER_VALUES: ClassVar[Dict[str, Any]] = {}

    @classmethod
    def predated(cls, recorded: dict) -> Dict[str, Any]:
        """The EARLIER_VALUES of the settings `recorded` (a result's or a book's) never held."""
        return {k: v for k, v in cls.EARLIER_VALUES.items() if k not in recorded}

    @classmethod
    def as_recorded(cls, recorded: Optional[dict]) -> dict:
        """The settings a result's record holds, with EARLIER_VALUES for those it predates."""
        recorded = dict(recorded or {})
        return {**cls.predated(recorded), **recorded}

    @classmethod
    def from_dict(cls, values: Optional[dict]) -> "EngineSettings":
        """Build settings from user input, naming unknown keys and bad values clearly."""
        values = dict(values or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise VoxmithError(
                f"Unknown setting(s) {', '.join(unknown)} for {cls.__name__}. "
                f"Known settings: {', '.join(sorted(known)) or 'none'}."
            )
        converted = {}
        for name, value in values.items():
            default = getattr(cls, name, None) if known[name].default is not dataclasses.MISSING else None
            converted[name] = coerce_setting(name, value, default)
        settings = cls(**converted)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise `VoxmithError` for values out of range. Subclasses override."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def coerce_setting(name: str, value: Any, default: Any) -> Any:
    """Convert strings from the CLI/UI into the type of the default value; a value of another type
    (JSON from the HTTP API, a sidecar) must already be of that type (an int where a float is
    expected is taken as one; a bool is never a number, nor a number a bool)."""
    if default is None:
        return value
    if not isinstance(value, str):
        expected = type(default)
        is_bool = isinstance(value, (bool, np.bool_))
        fits = (is_bool if expected is bool
                else isinstance(value, numbers.Integral) and not is_bool if expected is int
                else isinstance(value, numbers.Real) and not is_bool if expected is float
                else True)
        if not fits:
            raise VoxmithError(f"Setting '{name}' must be a {expected.__name__}, got {value!r}.")
        return expected(value) if expected in (bool, int, float) else value
    try:
        if isinstance(default, bool):
            lowered = value.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return lowered in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        raise VoxmithError(f"Setting '{name}' must be a {type(default).__name__}, got '{value}'.") from None
    return value


@dataclass
class Candidate:
    """One synthesised take. `scores` holds whatever ranking measured (higher is better unless
    the name says otherwise, e.g. 'wer')."""

    samples: np.ndarray  # float32 mono
    sample_rate_hz: int
    seed: int
    scores: Dict[str, float] = field(default_factory=dict)
    details: Dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate_hz


@dataclass(frozen=True)
class TrainingLine:
    """One transcribed clip of a dataset: the engine's parallel data for fine-tuning."""

    audio_path: Path
    text: str


@dataclass(frozen=True)
class LoraSpec:
    rank: int
    alpha: float
    target_modules: Tuple[str, ...]  # name fragments of the layers that get adapters


@dataclass(frozen=True)
class FinetuneSpec:
    """What an engine needs to build a training task (the run's loop does the rest)."""

    train: Tuple[TrainingLine, ...]
    validation: Tuple[TrainingLine, ...]
    batch_size: int
    seed: int
    # Per-dataset folder where the engine may keep features it computes once (codes, alignments);
    # keyed by the engine's own cache key inside, so a changed engine recomputes.
    cache_dir: Path
    lora: Optional[LoraSpec] = None
    # The run's epochs (0: not known), for tasks that train in stages and split them.
    epochs: int = 0
    # The engine's own training settings from the run's config (`engine: settings:`), as
    # `Engine.parse_training_settings` returned them (plain YAML values).
    settings: Dict[str, Any] = field(default_factory=dict)
    # The fine-tuned weights of another training run of the workspace, by its name (latest
    # checkpoint): for a stage that builds on another run's model (sv2tts' vocoder on a fine-tuned
    # synthesizer's aligned mels). None: no workspace to look in.
    run_weights: Optional[Callable[[str], "Finetune"]] = field(default=None, compare=False)
    # Every speaker of the workspace as (name, audio files): each voice's clips and each dataset's
    # usable segments, a voice and a dataset of the same name being one speaker. For training that
    # compares speakers (sv2tts' speaker encoder), which calls it; a function because finding them
    # reads every dataset's manifest, which other engines' runs need not pay for.
    speakers: Callable[[], Tuple[Tuple[str, Tuple[Path, ...]], ...]] = field(default=lambda: (), compare=False)


@dataclass(frozen=True)
class Finetune:
    """Fine-tuned weights a voice uses: `load_state()` returns the checkpoint's model state dict
    (the `model.state_dict()` of the engine's own training task); `config` is the run's training
    config as a plain dict (LoRA settings etc.); `key` changes whenever the weights do."""

    key: str
    description: str  # e.g. "run 'alice-ft', step 120" (shown to users)
    load_state: Callable[[], Dict[str, Any]]
    config: Dict[str, Any] = field(default_factory=dict)


class Converter(Protocol):
    """Converts consecutive chunks of one recording (cut at pauses by the caller) into a voice."""

    sample_rate_hz: int
    details: Dict[str, Any]  # what was fitted to this recording (recorded in the sidecar)

    def convert(self, samples: np.ndarray) -> np.ndarray:
        """The chunk in the voice: mono float32, exactly as many samples as the input."""


class Engine(ABC):
    """Base class for engines. Subclasses set the class attributes and implement two methods."""

    name: ClassVar[str]
    version: ClassVar[str]  # bump when conditioning or output for the same inputs changes
    description: ClassVar[str] = ""
    sample_rate_hz: ClassVar[int]
    device_needs: ClassVar[DeviceNeeds] = DeviceNeeds()
    settings_class: ClassVar[Type[EngineSettings]] = EngineSettings
    # Settings worth an option of their own in the CLI (see EngineOption).
    options: ClassVar[Tuple[EngineOption, ...]] = ()
    # ISO 639-1 codes of the languages the engine can say (the studio refuses text in others).
    languages: ClassVar[Tuple[str, ...]] = ("en",)

    # --- model files (what `voxmith models` lists and downloads) ---------------------------------
    # Where the engine's downloadable files come from, in words (e.g. a Hugging Face repository).
    models_source: ClassVar[str] = ""
    # Model versions whose files can be fetched on their own (`voxmith models download ENGINE
    # --version V`); empty when the engine has one set of files.
    model_versions: ClassVar[Tuple[str, ...]] = ()

    @classmethod
    def model_files(cls, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> Tuple[ModelFile, ...]:
        """Every file the engine's models are made of, each with where it is on this machine.
        `models_dir` (a user's explicit folder) is searched first, then the engine's usual places,
        which include `workspace_models` (the workspace's models/ folder). Engines with no files
        of their own list none."""
        return ()

    @classmethod
    def model_download_dir(cls, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> Path:
        """Where `download_models` puts new files."""
        raise VoxmithError(f"The {cls.name} engine has nothing to download.")

    @classmethod
    def download_models(cls, names: Sequence[str], workspace_models: Optional[Path], models_dir: Optional[Path] = None,
                        progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
        """Download the named files (from `model_files`, downloadable ones) into
        `model_download_dir`, resuming partial files; returns name -> path."""
        raise VoxmithError(f"The {cls.name} engine has nothing to download.")

    @classmethod
    def model_version_files(cls, version: str) -> Tuple[str, ...]:
        """The names of the files model version `version` (one of `model_versions`) needs."""
        raise VoxmithError(f"The {cls.name} engine has no model versions to choose from.")

    def __init__(self, device: str = "cpu", models_dir: Optional[Path] = None):
        self.device = device
        # Where downloaded weights go (the workspace's models/ folder); engines that ship their
        # weights in packages ignore it.
        self.models_dir = models_dir
        # The weights this object speaks with: None for the stock engine; a fine-tuned variant
        # (made by `with_finetune`) names its `Finetune` and points back at the stock engine.
        self.finetune: Optional[Finetune] = None
        self.stock: Engine = self
        self._variants: "OrderedDict[str, Engine]" = OrderedDict()
        self._variants_lock = threading.Lock()

    def cache_key(self) -> str:
        """Identifies the conditioning this engine object computes; part of the cache key. Pure: it
        depends only on the engine and the weights this object owns."""
        return f"{self.name}-{self.version}"

    @abstractmethod
    def prepare_conditioning(self, clips: Sequence[Audio],
                             progress: Optional[ProgressCallback] = None) -> Conditioning:
        """Compute what synthesis needs from a voice's clips (all of every clip)."""

    def conditioning_notes(self, conditioning: Conditioning) -> Optional[dict]:
        """What enrollment decided for a voice that a user should know (e.g. what was reduced to
        keep it intelligible), as plain JSON-able values; None when there is nothing to say."""
        return None

    # --- fine-tuning (optional) ------------------------------------------------------------------
    supports_training: ClassVar[bool] = False
    # Training-config values that suit this engine's model better than the generic defaults, as
    # {section: {setting: value}} (e.g. a higher learning rate for a small model); `train init` applies them.
    training_defaults: ClassVar[Dict[str, Dict[str, Any]]] = {}
    # How long a run trains when its creator names no epochs: `training_steps` optimizer steps
    # whatever the dataset's size (its epochs follow from the steps per epoch), or, when that is
    # None, `training_epochs` epochs.
    training_steps: ClassVar[Optional[int]] = None
    training_epochs: ClassVar[int] = 60
    # The losses its training task's model returns, with their default weights (the run's
    # `losses: weights:` and the shells' --loss-weight name them); its task declares the same.
    training_losses: ClassVar[Tuple[LossTerm, ...]] = ()

    @classmethod
    def parse_training_settings(cls, values: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        """The engine's own training settings (`train init --set NAME=VALUE`, strings from a shell or
        values from config.yaml) as plain YAML values with the engine's defaults filled in; raises
        VoxmithError naming what is wrong. Engines with settings of their own override it."""
        if values:
            raise VoxmithError(f"The {cls.name} engine has no training settings of its own "
                               f"(got {', '.join(sorted(values))}); use the run's options instead.")
        return {}

    @classmethod
    def training_defaults_for(cls, settings: Dict[str, Any], train_lines: int) -> Dict[str, Dict[str, Any]]:
        """`training_defaults` for a run with these parsed settings on `train_lines` lines (an
        engine whose stages train differently gives each its own)."""
        return cls.training_defaults

    def training_task(self, spec: FinetuneSpec, progress: Optional[ProgressCallback] = None) -> Any:
        """A `voxmith.training.TrainingTask` that fine-tunes this engine's model on `spec`'s lines: a
        `model` whose forward(batch) returns the losses, `batches(epoch)` and `validation_loss()`.
        Engines that train override this."""
        raise VoxmithError(f"The {self.name} engine cannot be fine-tuned.")

    def with_finetune(self, finetune: Optional[Finetune]) -> "Engine":
        """This engine speaking with `finetune`'s weights: a separate engine object that owns them
        (None: the stock engine). The same object comes back for the same `finetune.key` while it
        is among the FINETUNES_KEPT last used; nothing about the stock engine changes."""
        stock = self.stock
        if finetune is None:
            return stock
        with stock._variants_lock:  # two threads asking for the same weights load them once
            variant = stock._variants.get(finetune.key)
            if variant is None:
                variant = stock.load_finetune(finetune)
                variant.finetune, variant.stock = finetune, stock
                stock._variants[finetune.key] = variant
                while len(stock._variants) > FINETUNES_KEPT:
                    stock._variants.popitem(last=False)  # requests holding it keep their reference
            else:
                stock._variants.move_to_end(finetune.key)
            return variant

    def load_finetune(self, finetune: Finetune) -> "Engine":
        """A new engine object of this class that speaks with `finetune`'s weights, sharing what it
        can with this (stock) engine and never changing it. Called by `with_finetune`, once per
        key; engines that train override it and raise VoxmithError for weights that do not fit."""
        raise VoxmithError(f"The {self.name} engine cannot use fine-tuned weights.")

    # Whether fine-tuned weights are checked on a voice before it speaks with them (below); the
    # studio loads weights for the check only for engines that set it.
    checks_finetunes: ClassVar[bool] = False

    def finetune_check_key(self) -> Optional[str]:
        """For a fine-tuned variant whose weights are checked on a voice before it speaks with them
        (`check_finetune`): what the check's outcome depends on besides the voice's conditioning
        (a digest of the weights, the check's version), so the studio runs it once per voice and
        weights. None (the default, and for stock engines): nothing to check."""
        return None

    def check_finetune(self, conditioning: Conditioning,
                       progress: Optional[ProgressCallback] = None) -> Conditioning:
        """Check this variant's fine-tuned weights on the voice of `conditioning` (only called when
        `finetune_check_key` is not None): the entries to add to the voice's conditioning whenever
        it speaks with these weights, with FINETUNE_REFUSED (a message) when they must not be used
        at all. A pure function of the weights and the conditioning."""
        return {}

    def resolved_settings(self, settings: EngineSettings) -> EngineSettings:
        """`settings` with machine-dependent choices (an `auto` precision) replaced by what this
        engine will really run: what a result's sidecar records, so `reproduce` on another machine
        runs the same arithmetic or says why it cannot. Default: unchanged."""
        return settings

    def checked_request(self, text: str, settings: Optional[EngineSettings]) -> EngineSettings:
        """`settings` as this engine's validated settings class; refuses empty text. For synthesize."""
        if not isinstance(settings, self.settings_class):
            settings = self.settings_class.from_dict(settings.to_dict() if settings else None)
        settings.validate()
        if not text or not text.strip():
            raise VoxmithError("Nothing to say: the text is empty.")
        return settings

    # --- voice conversion (optional) --------------------------------------------------------------
    supports_convert: ClassVar[bool] = False
    convert_settings_class: ClassVar[Type[EngineSettings]] = EngineSettings

    def converter(self, sample: np.ndarray, conditioning: Conditioning, settings: EngineSettings,
                  progress: Optional[ProgressCallback] = None) -> "Converter":
        """A `Converter` for one recording of any speaker, fitted on `sample` (its start, mono float32
        at `sample_rate_hz`). Engines that can convert set `supports_convert` and override this."""
        raise VoxmithError(f"The {self.name} engine cannot convert recordings (it only speaks text).")

    def checked_convert_settings(self, settings: Optional[EngineSettings | dict]) -> EngineSettings:
        """`settings` (a dict or settings object) as this engine's validated conversion settings."""
        if not isinstance(settings, self.convert_settings_class):
            values = settings.to_dict() if isinstance(settings, EngineSettings) else settings
            settings = self.convert_settings_class.from_dict(values)
        settings.validate()
        return settings

    @abstractmethod
    def synthesize(self, text: str, conditioning: Conditioning, settings: EngineSettings, *,
                   seed: int, candidates: int = 1,
                   progress: Optional[ProgressCallback] = None) -> List[Candidate]:
        """Speak `text` in the conditioned voice; return `candidates` takes, best first.
        The same inputs and seed must give the same audio."""
