"""`TortoiseEngine`: TorToiSe TTS 3.0.0 (voxmith's own implementation) behind voxmith's engine interface.

Conditioning (`prepare_conditioning`) uses ALL of a voice's audio by default: the clips are joined,
cut into equal chunks of at most 6 s, and the autoregressive and diffusion conditioning latents are
the averages over the chunks (official TorToiSe looks at one random 6 s crop and the first 4.3 s of
each clip). The cached dict also keeps the clips at 22.05 kHz, so `conditioning="official"` can
redo the official crops at synthesis time, where they depend on the seed as they do officially.

`synthesize` runs `pipeline.tts` for one sentence and returns its k best takes (k = `candidates`)
with their CLVP (and CVVP) scores. Weights are the official checkpoint files, found or downloaded by
`checkpoints.ensure_checkpoints` on first use.

Fine-tuning (`training_task`, see `training.py`) trains a copy of the autoregressive model;
`with_finetune` gives a variant engine with its own copy of the AR holding the fine-tuned weights (or
LoRA adapters merged in), sharing the other models with the stock engine, which never changes.
The pipeline seeds and draws from torch's global RNG (as official TorToiSe does, for identical
takes), so synthesis holds `TORCH_RNG_LOCK`: requests from several threads run one after another,
each exactly as it would alone.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from voxmith.audio import Audio
from voxmith.engines.base import (TORCH_RNG_LOCK, Candidate, Conditioning, DeviceNeeds, Engine, EngineOption,
                                  EngineSettings, Finetune, FinetuneSpec, ModelFile, coerce_setting)
from voxmith.engines.weights import state_fingerprint
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report

from . import checkpoints
from .audio import chunk_conditioning_mels, clip_22k, whole_clip_chunks
from .autoregressive import UnifiedVoice, UnifiedVoiceConfig
from .dvae import DiscreteVAE, DiscreteVAEConfig
from .pipeline import TortoiseModels, build_loaded, tts
from .precision import DecoderCache, resolve_ar_precision
from .presets import AR_PRECISIONS, DEFAULT_PRESET, PRESETS, SAMPLERS, TtsOptions, auto_batch_size, preset_options
from .tokenizer import TextTooLongError, TortoiseTokenizer
from .training import LOSSES, TortoiseTrainingTask, apply_finetune_state
from .training_data import CACHE_FORMAT

CONDITIONING_MODES = ("whole", "official")
CVVP_MAX_CHUNKS = 4  # CVVP scores every take against each mel; a few chunks spread over the voice suffice

# Knobs that default to None ("take the preset's value") and their types, for CLI/UI strings.
_KNOB_TYPES = {
    "num_autoregressive_samples": int, "autoregressive_batch_size": int, "temperature": float,
    "top_p": float, "repetition_penalty": float, "length_penalty": float, "max_mel_tokens": int,
    "diffusion_iterations": int, "cond_free": bool, "cond_free_k": float, "diffusion_temperature": float,
    "cvvp_amount": float,
}
# name -> (low, high, low is exclusive)
_RANGES = {
    "num_autoregressive_samples": (1, 4096, False), "autoregressive_batch_size": (1, 256, False),
    "temperature": (0.0, 10.0, True), "top_p": (0.0, 1.0, True), "repetition_penalty": (0.0, 20.0, True),
    "length_penalty": (-10.0, 10.0, False), "max_mel_tokens": (4, 600, False),
    "diffusion_iterations": (1, 4000, False), "cond_free_k": (0.0, 20.0, False),
    "diffusion_temperature": (0.0, 2.0, False), "cvvp_amount": (0.0, 1.0, False),
}


@dataclass
class TortoiseSettings(EngineSettings):
    """TorToiSe knobs. A knob left at None takes its value from `preset`, exactly as official
    `tts_with_preset` does: the tuned base values (temperature .8, top_p .8, repetition_penalty 2,
    length_penalty 1, cond_free_k 2, diffusion_temperature 1), then the preset's sample count,
    diffusion steps and cond_free, then every knob set here. max_mel_tokens defaults to 500,
    cvvp_amount to 0 and the AR batch size to the official choice from free GPU memory (1 on CPU).
    The number of takes returned (official `k`) and the seed are `synthesize`'s arguments."""

    preset: str = DEFAULT_PRESET  # ultra_fast | fast | standard | high_quality
    conditioning: str = "whole"  # whole: all of every clip; official: official crops (seeded)
    num_autoregressive_samples: Optional[int] = None
    autoregressive_batch_size: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    repetition_penalty: Optional[float] = None
    length_penalty: Optional[float] = None  # no effect, as officially (HF applies it to beam search only)
    max_mel_tokens: Optional[int] = None  # longest take in codes (~21.5 per second)
    diffusion_iterations: Optional[int] = None
    sampler: str = "p"  # p: official ancestral sampler; ddim: deterministic DDIM steps
    cond_free: Optional[bool] = None
    cond_free_k: Optional[float] = None
    diffusion_temperature: Optional[float] = None
    cvvp_amount: Optional[float] = None  # weight of CVVP (voice match) against CLVP (text match)
    # The official kv-cache path (do_tts.py, read.py) feeds codes at off-by-one positions; True
    # reproduces it, False gives the official no-cache positions (what the model was trained with).
    official_positions: bool = False
    half: bool = False  # fp16 autocast for the AR model and the rankers; CUDA only, ignored elsewhere
    # Weights of the AR model while sampling codes (precision.py). auto: chosen from the CPU's features
    # (precision.auto_cpu_precision: int8 on x86 with AVX2), float32 elsewhere.
    ar_precision: str = "auto"  # auto | float32 | bfloat16 | int8

    @classmethod
    def from_dict(cls, values: Optional[dict]) -> "TortoiseSettings":
        values = dict(values or {})
        for name, kind in _KNOB_TYPES.items():
            value = values.get(name)
            if isinstance(value, str):
                if value.strip().lower() in ("", "none", "preset", "auto"):
                    values[name] = None
                else:
                    values[name] = coerce_setting(name, value, False if kind is bool else kind(0))
        return super().from_dict(values)  # type: ignore[return-value]

    def validate(self) -> None:
        for name, allowed in (("preset", tuple(PRESETS)), ("conditioning", CONDITIONING_MODES),
                              ("sampler", SAMPLERS), ("ar_precision", ("auto",) + AR_PRECISIONS)):
            if getattr(self, name) not in allowed:
                raise VoxmithError(f"Setting '{name}' must be one of {', '.join(allowed)}, "
                                   f"got '{getattr(self, name)}'.")
        for name in ("official_positions", "half"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise VoxmithError(f"Setting '{name}' must be true or false, got {getattr(self, name)!r}.")
        for name, kind in _KNOB_TYPES.items():
            value = getattr(self, name)
            if value is None:
                continue
            if kind is bool:
                if not isinstance(value, (bool, np.bool_)):
                    raise VoxmithError(f"Setting '{name}' must be true or false, got {value!r}.")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    (kind is int and not float(value).is_integer()) or not math.isfinite(value):
                raise VoxmithError(f"Setting '{name}' must be {'a whole number' if kind is int else 'a number'}, "
                                   f"got {value!r}.")
            low, high, exclusive = _RANGES[name]
            if not ((low < value) if exclusive else (low <= value)) or value > high:
                lower = f"above {low}" if exclusive else f"at least {low}"
                raise VoxmithError(f"Setting '{name}' must be {lower} and at most {high}, got {value}.")
        samples, batch = self.num_autoregressive_samples, self.autoregressive_batch_size
        if samples is None:
            samples = PRESETS[self.preset]["num_autoregressive_samples"]
        if batch is not None and samples < batch:
            raise VoxmithError(f"num_autoregressive_samples ({samples}) is smaller than autoregressive_batch_size "
                               f"({batch}): no batch would run. Lower the batch size or raise the samples.")

    def options(self, candidates: int = 1) -> TtsOptions:
        """The resolved options for one run returning `candidates` takes."""
        knobs = {name: getattr(self, name) for name in _KNOB_TYPES if getattr(self, name) is not None}
        for name in ("num_autoregressive_samples", "autoregressive_batch_size", "max_mel_tokens",
                     "diffusion_iterations"):
            if name in knobs:
                knobs[name] = int(knobs[name])
        if self.ar_precision != "auto":  # auto depends on the device: synthesize resolves it
            knobs["ar_precision"] = self.ar_precision
        return preset_options(self.preset, **knobs, sampler=self.sampler, k=int(candidates),
                              official_positions=bool(self.official_positions), half=bool(self.half))


class TortoiseEngine(Engine):
    name = "tortoise"
    version = "1"
    description = ("TorToiSe TTS 3.0.0 (voxmith's implementation of the official models): autoregressive "
                   "speech codes ranked by CLVP/CVVP, then a diffusion decoder and the UnivNet vocoder.")
    sample_rate_hz = 24000
    device_needs = DeviceNeeds(runs_on_cpu=True, gpu_recommended=True, min_gpu_memory_gb=6.0,
                               note="Runs on the CPU, very slowly (minutes to hours per sentence with "
                                    "the presets); an NVIDIA GPU with about 6 GB is recommended. "
                                    "Downloads ~4.3 GB of weights on first use.")
    settings_class = TortoiseSettings
    options = (EngineOption("preset", "the official quality/speed preset", tuple(PRESETS)),)
    languages = ("en",)  # trained on English audiobooks; its tokenizer is English
    supports_training = True
    # The GPT fine-tuning recipes around TorToiSe clip the gradient norm at 4.
    training_defaults = {"schedule": {"max_grad_norm": 4.0}}
    training_epochs = 60  # ai-voice-cloning's schedule
    training_losses = LOSSES
    models_source = f"Hugging Face {checkpoints.REPO_ID} (dvae.pth: {checkpoints.BY_NAME['dvae.pth'].repo_id})"

    @classmethod
    def model_files(cls, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> Tuple[ModelFile, ...]:
        found = checkpoints.find_checkpoints(checkpoints.ALL_NAMES, models_dir, workspace_models)
        return tuple(ModelFile.located(c.name, c.purpose, c.required, c.approx_bytes, found[c.name])
                     for c in checkpoints.CHECKPOINTS)

    @classmethod
    def model_download_dir(cls, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> Path:
        return checkpoints.download_dir(models_dir, workspace_models)

    @classmethod
    def download_models(cls, names: Sequence[str], workspace_models: Optional[Path], models_dir: Optional[Path] = None,
                        progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
        return checkpoints.download_checkpoints(names, cls.model_download_dir(workspace_models, models_dir),
                                                progress=progress)

    def __init__(self, device: str = "cpu", models_dir=None):
        super().__init__(device, models_dir)
        self._models = None
        self._tokenizer = None
        # file name -> model config overriding the official sizes (tests load tiny checkpoints)
        self.model_configs: Optional[dict] = None
        # The DVAE for fine-tuning: None loads dvae.pth (downloaded on first use); tests inject one.
        self.dvae = None
        # A fine-tuned variant whose weights change the conditioning encoder (a full fine-tune)
        # names them in its cache key, so voice latents of the stock weights are not reused.
        self._conditioning_tag: Optional[str] = None

    @classmethod
    def with_models(cls, models, device: Optional[str] = None) -> "TortoiseEngine":
        """An engine around already-built `pipeline.TortoiseModels` (no checkpoint files)."""
        engine = cls(device or str(models.device))
        engine._models = models
        return engine

    @classmethod
    def tiny(cls, seed: int = 0, device: str = "cpu") -> "TortoiseEngine":
        """An engine with tiny random-weight models: for tests; its audio is noise."""
        with TORCH_RNG_LOCK:
            engine = cls.with_models(TortoiseModels.tiny(seed, device=device), device)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + 1)
                engine.dvae = DiscreteVAE(DiscreteVAEConfig.tiny()).eval()
        return engine

    def cache_key(self) -> str:
        key = super().cache_key()
        return key + "-ft-" + self._conditioning_tag if self._conditioning_tag else key

    def models(self, progress: Optional[ProgressCallback] = None):
        """The models, loaded on first use (missing checkpoint files are downloaded)."""
        with TORCH_RNG_LOCK:  # one load, whichever thread asks first
            return self._load_models(progress)

    def _load_models(self, progress: Optional[ProgressCallback]):
        if self._models is None:
            paths = checkpoints.ensure_checkpoints(checkpoints.REQUIRED_NAMES, workspace_models=self.models_dir,
                                                   progress=progress)

            def resolve(name: str):
                return checkpoints.ensure_checkpoints([name], workspace_models=self.models_dir,
                                                      progress=progress)[name]

            report(progress, "loading TorToiSe models", 0, None)
            self._models = TortoiseModels.from_checkpoints(paths, self.device, resolve, self.model_configs)
            report(progress, "loading TorToiSe models", 1, 1)
        return self._models

    # --- fine-tuning -------------------------------------------------------------------------------

    def training_task(self, spec: FinetuneSpec, progress: Optional[ProgressCallback] = None):
        """A task training a copy of the autoregressive model (stock weights) on `spec`'s lines."""
        dvae_id, dvae = self._dvae_source(progress)
        return TortoiseTrainingTask(self._stock_ar_copy(progress), spec, dvae=dvae, dvae_id=dvae_id,
                                    encode_text=self.tokenizer().encode,
                                    cache_key=f"{self.name}-{self.version}-codes{CACHE_FORMAT}", progress=progress)

    def _stock_ar_copy(self, progress: Optional[ProgressCallback]):
        """A private, stock-weight copy of the AR on this engine's device: copied from the loaded
        models, or (so training does not load the other 2.5 GB of models) read from its file."""
        if self.stock is not self:  # a fine-tuned variant: training starts from the stock weights
            return self.stock._stock_ar_copy(progress)
        if self._models is not None:
            return copy.deepcopy(self._models.ar).to(self.device)
        path = checkpoints.ensure_checkpoints(["autoregressive.pth"], workspace_models=self.models_dir,
                                              progress=progress)["autoregressive.pth"]
        config = (self.model_configs or {}).get("autoregressive.pth", UnifiedVoiceConfig())
        return build_loaded(UnifiedVoice, config, path, "autoregressive").to(self.device)

    def _dvae_source(self, progress: Optional[ProgressCallback]) -> Tuple[str, Callable[[], Any]]:
        """(identity of the DVAE's weights, function giving the DVAE on this engine's device); the
        file is only found, downloaded and loaded when the function is called."""
        if self.dvae is not None:
            return state_fingerprint(self.dvae)[:16], lambda: self.dvae.to(self.device).eval()
        loaded: list = []

        def load():
            if not loaded:
                path = checkpoints.ensure_checkpoints(["dvae.pth"], workspace_models=self.models_dir,
                                                      progress=progress)["dvae.pth"]
                loaded.append(build_loaded(DiscreteVAE, DiscreteVAEConfig(), path, "DVAE").to(self.device))
            return loaded[0]

        # Only the official file is supported (it loads strictly), so its hash names it.
        return checkpoints.BY_NAME["dvae.pth"].sha256[:16], load

    def load_finetune(self, finetune: Finetune) -> "TortoiseEngine":
        """A variant with its own AR: a copy of the stock one with `finetune`'s full weights, or its
        LoRA adapters merged in. The other models, the tokenizer and the DVAE are shared."""
        models = self.models()
        with TORCH_RNG_LOCK:  # the stock AR must not move between devices while it is copied
            ar = copy.deepcopy(models.ar)
        changes_conditioning = apply_finetune_state(ar, finetune.load_state(), finetune.config)
        variant = TortoiseEngine(self.device, self.models_dir)
        variant.model_configs, variant.dvae, variant._tokenizer = self.model_configs, self.dvae, self.tokenizer()
        variant._models = dataclasses.replace(models, ar=ar, decoders=DecoderCache())
        if changes_conditioning:
            variant._conditioning_tag = hashlib.sha256(finetune.key.encode()).hexdigest()[:12]
        return variant

    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = TortoiseTokenizer()
        return self._tokenizer

    def prepare_conditioning(self, clips: Sequence[Audio],
                             progress: Optional[ProgressCallback] = None) -> Conditioning:
        if not clips:
            raise VoxmithError("tortoise needs at least one clip of the voice.")
        waves = [clip_22k(clip) for clip in clips]
        with TORCH_RNG_LOCK:  # the models are shared with other requests (see the module docstring)
            return self._conditioning_latents(waves, progress)

    def _conditioning_latents(self, waves: List[torch.Tensor], progress: Optional[ProgressCallback]) -> Conditioning:
        models = self.models(progress)
        report(progress, "tortoise: conditioning latents", 0, 2)
        chunks = whole_clip_chunks(waves)
        ar_mels, diff_mels = chunk_conditioning_mels(chunks)
        with torch.no_grad():
            auto = models.use(models.ar).get_conditioning(ar_mels.to(models.device))
            report(progress, "tortoise: conditioning latents", 1, 2)
            diff = models.use(models.diffusion).get_conditioning(diff_mels.to(models.device))
        report(progress, "tortoise: conditioning latents", 2, 2)
        n = ar_mels.shape[1]
        picks = sorted({round(i * (n - 1) / max(1, CVVP_MAX_CHUNKS - 1)) for i in range(min(n, CVVP_MAX_CHUNKS))})
        return {
            "auto_latent": auto.float().cpu().numpy(),
            "diffusion_latent": diff.float().cpu().numpy(),
            "cvvp_mels": ar_mels[0, picks].float().numpy(),
            "chunks": np.asarray(n, dtype=np.int64),
            "clips_22k": torch.cat([w.reshape(-1) for w in waves]).numpy().astype(np.float32),
            "clip_lengths": np.asarray([w.shape[-1] for w in waves], dtype=np.int64),
        }

    def synthesize(self, text: str, conditioning: Conditioning, settings: EngineSettings, *,
                   seed: int, candidates: int = 1,
                   progress: Optional[ProgressCallback] = None) -> List[Candidate]:
        settings = self.checked_request(text, settings)
        if int(candidates) < 1:
            raise VoxmithError(f"candidates must be at least 1, got {candidates}.")
        missing = [key for key in ("auto_latent", "diffusion_latent", "clips_22k", "clip_lengths")
                   if key not in conditioning]
        if missing:
            raise VoxmithError(f"The voice's tortoise conditioning lacks {', '.join(missing)}; prepare it again.")
        try:
            tokens = self.tokenizer().text_tokens_for_tts(text)
        except TextTooLongError as err:
            raise VoxmithError(f"{err}.") from None
        with TORCH_RNG_LOCK:  # seeded runs draw from torch's global RNG (see the module docstring)
            return self._synthesize(tokens, conditioning, settings, int(seed), int(candidates), progress)

    def _synthesize(self, tokens: torch.Tensor, conditioning: Conditioning, settings: TortoiseSettings, seed: int,
                    candidates: int, progress: Optional[ProgressCallback]) -> List[Candidate]:
        models = self.models(progress)
        options = settings.options(candidates)
        options = options.replace(ar_precision=resolve_ar_precision(settings.ar_precision, models.device))
        if options.autoregressive_batch_size is None:  # the official choice, but never above the samples
            options = options.replace(autoregressive_batch_size=min(
                auto_batch_size(str(models.device)), options.num_autoregressive_samples))
        drawn = (options.num_autoregressive_samples // options.autoregressive_batch_size) * \
            options.autoregressive_batch_size
        if drawn < options.k:
            raise VoxmithError(f"{options.k} takes were asked for but only {drawn} autoregressive samples "
                               "are drawn; raise num_autoregressive_samples.")
        if options.cvvp_amount > 0 and models.cvvp is None and models.cvvp_builder is not None:
            # Official builds CVVP inside its first seeded run, so that run's noise differs from all
            # later ones with the same seed. Building it beforehand gives every run the later result.
            with torch.random.fork_rng(devices=[]):
                models.cvvp = models.cvvp_builder()
        if settings.conditioning == "official":
            lengths = [int(n) for n in np.asarray(conditioning["clip_lengths"]).reshape(-1)]
            flat = torch.from_numpy(np.asarray(conditioning["clips_22k"], dtype=np.float32))
            voice = dict(voice_clips=[c.reshape(1, -1) for c in torch.split(flat, lengths)])
        else:
            latents = (torch.from_numpy(np.asarray(conditioning["auto_latent"], dtype=np.float32)),
                       torch.from_numpy(np.asarray(conditioning["diffusion_latent"], dtype=np.float32)))
            mels = conditioning.get("cvvp_mels")
            voice = dict(latents=latents,
                         cvvp_mels=None if mels is None else torch.from_numpy(np.asarray(mels, np.float32))[None])
        result = tts(models, tokens, options, int(seed), progress=progress, **voice)
        resolved = dataclasses.asdict(options)
        takes = []
        for rank, cand in enumerate(result.candidates):
            scores = {"rank_score": cand.score}
            if cand.clvp is not None:
                scores["clvp"] = cand.clvp
            if cand.cvvp is not None:
                scores["cvvp"] = cand.cvvp
            details: dict[str, Any] = {
                "rank": rank, "sample_index": cand.sample_index, "codes": cand.latent_length,
                "autoregressive_samples": int(result.sampled.shape[0]), "conditioning": settings.conditioning,
                "options": resolved,
            }
            takes.append(Candidate(samples=cand.wav.numpy().astype(np.float32), sample_rate_hz=self.sample_rate_hz,
                                   seed=int(seed), scores=scores, details=details))
        return takes


__all__ = ["TortoiseEngine", "TortoiseSettings", "CONDITIONING_MODES"]
