"""`SV2TTSEngine`: Real-Time-Voice-Cloning's SV2TTS (voxmith's own implementation of its models)
behind voxmith's engine interface.

Conditioning (`prepare_conditioning`) is the speaker encoder's embedding of ALL of every clip: each
clip is levelled and its long pauses removed (as the encoder was trained), embedded from
overlapping 1.6 s windows covering all of it, and the clips' embeddings are averaged and
normalised (official demo: one clip). `synthesize` says one sentence: the official English
cleaners, the Tacotron synthesizer (its pre-net dropout on, as officially), trailing silence
trimmed, then WaveRNN (batched, as officially) or the Griffin-Lim fallback; the result is
levelled and long pauses are removed, as the official demo does. Candidate i uses seed + i, which
seeds both the synthesizer and the vocoder, as `demo_cli.py --seed` reseeds before each.

All randomness comes from `torch.Generator`s made per request, so the shared models serve several
threads at once, each getting exactly what it would get alone. Weights are the official checkpoint
files, which are never fetched implicitly: without them synthesis names
`voxmith models download sv2tts`.

Training (`training_task`): one stage per run, picked by the run's `stage` setting
(training_settings.py) from `STAGE_BUILDERS` (training.py); `load_finetune` makes an engine
that speaks with the models a run's checkpoint holds, the others stock.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from voxmith.audio import Audio
from voxmith.engines.base import Candidate, Conditioning, DeviceNeeds, Engine, EngineSettings, Finetune, ModelFile
from voxmith.engines.weights import state_fingerprint
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report

from . import checkpoints
from .bundle import SV2TTSModels
from .encoder_audio import normalize_volume, preprocess_wav, trim_long_silences
from .griffin_lim import griffin_lim
from .encoder_training import pretrained_encoder
from .hparams import SAMPLE_RATE_HZ, EncoderAudio, EncoderConfig
from .speaker_encoder import SpeakerEncoder, average_embedding, embed_utterance
from .tacotron import trim_trailing_silence
from .text import ids_to_text, text_to_ids
from .training import STAGE_BUILDERS, TRAINING_LOSSES, finetuned_models, stage_defaults
from .training_settings import TrainingHparams

VOCODERS = ("wavernn", "griffinlim")
MIN_CLIP_SAMPLES = SAMPLE_RATE_HZ // 4  # a clip with less speech than this is embedded untrimmed
SILENCE_PEAK = 1e-4  # a clip whose peak stays below this (-80 dBFS) is silent


@dataclass
class SV2TTSSettings(EngineSettings):
    """SV2TTS knobs. The seed and the number of takes are `synthesize`'s arguments."""

    vocoder: str = "wavernn"  # wavernn: the official neural vocoder; griffinlim: fast, lower quality
    batched: bool = True  # WaveRNN generates folds of the signal at once (official default)
    target_samples: int = 8000  # WaveRNN fold length (official infer_waveform default)
    overlap_samples: int = 800  # WaveRNN fold overlap: warm-up and crossfade (official default)
    max_seconds: float = 25.0  # longest sentence the synthesizer may say (official: 2000 frames)
    trim_pauses: bool = True  # level the result and shorten long pauses, as the official demo does

    def validate(self) -> None:
        if self.vocoder not in VOCODERS:
            raise VoxmithError(f"Setting 'vocoder' must be one of {', '.join(VOCODERS)}, got '{self.vocoder}'.")
        for name in ("batched", "trim_pauses"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise VoxmithError(f"Setting '{name}' must be true or false, got {getattr(self, name)!r}.")
        if not isinstance(self.target_samples, int) or not 100 <= self.target_samples <= 1_000_000:
            raise VoxmithError(f"Setting 'target_samples' must be a whole number from 100 to 1000000, "
                               f"got {self.target_samples!r}.")
        if not isinstance(self.overlap_samples, int) or not 2 <= self.overlap_samples <= self.target_samples:
            raise VoxmithError(f"Setting 'overlap_samples' must be a whole number from 2 to target_samples "
                               f"({self.target_samples}), got {self.overlap_samples!r}.")
        if isinstance(self.max_seconds, bool) or not isinstance(self.max_seconds, (int, float)) \
                or not math.isfinite(self.max_seconds) or not 1.0 <= self.max_seconds <= 60.0:
            raise VoxmithError(f"Setting 'max_seconds' must be a number from 1 to 60, got {self.max_seconds!r}.")


class SV2TTSEngine(Engine):
    name = "sv2tts"
    version = "1"
    description = ("SV2TTS (Real-Time-Voice-Cloning, voxmith's implementation of the official models): a GE2E "
                   "speaker embedding conditions a Tacotron synthesizer; WaveRNN (or Griffin-Lim) makes the audio.")
    sample_rate_hz = SAMPLE_RATE_HZ
    device_needs = DeviceNeeds(runs_on_cpu=True, gpu_recommended=False,
                               note="Runs on the CPU (WaveRNN a few times slower than real time there); "
                                    "needs the official weights, ~425 MB: `voxmith models download sv2tts` (the encoder comes with resemblyzer).")
    settings_class = SV2TTSSettings
    languages = ("en",)  # English character input, trained on LibriSpeech
    models_source = f"Hugging Face {checkpoints.REPO_ID} (the Real-Time-Voice-Cloning pretrained models)"

    @classmethod
    def model_files(cls, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> Tuple[ModelFile, ...]:
        found = checkpoints.find_checkpoints(checkpoints.NAMES, models_dir, workspace_models)
        return tuple(ModelFile.located(c.name, c.purpose, True, c.size_bytes, found[c.name])
                     for c in checkpoints.CHECKPOINTS)

    @classmethod
    def model_download_dir(cls, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> Path:
        return checkpoints.download_dir(models_dir, workspace_models)

    @classmethod
    def download_models(cls, names: Sequence[str], workspace_models: Optional[Path], models_dir: Optional[Path] = None,
                        progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
        return checkpoints.download_checkpoints(names, cls.model_download_dir(workspace_models, models_dir), progress)

    def __init__(self, device: str = "cpu", models_dir=None):
        super().__init__(device, models_dir)
        self._models: Optional[SV2TTSModels] = None
        self._load_lock = threading.Lock()
        self._encoder_file: Optional[Path] = None  # the encoder.pt the loaded models came from
        # file name -> config overriding the official sizes (tests load tiny checkpoint files)
        self.model_configs: Optional[dict] = None

    @classmethod
    def with_models(cls, models: SV2TTSModels, device: Optional[str] = None) -> "SV2TTSEngine":
        """An engine around already-built models (no checkpoint files)."""
        engine = cls(device or str(models.device))
        engine._models = models
        return engine

    def cache_key(self) -> str:
        """The voice embedding depends on the encoder's weights: an encoder.pt other than the
        official one (a retrained encoder of the same size in a saved_models folder) gets its own
        cache entries, named by its hash."""
        key = super().cache_key()
        if self._models is not None and self._encoder_file is None:  # built in memory (tests)
            return f"{key}-enc-{state_fingerprint(self._models.encoder)[:12]}"
        location = self._encoder_file or checkpoints.find_checkpoint("encoder.pt", workspace_models=self.models_dir)
        if location is None:
            return key
        path = location if isinstance(location, Path) else location.path
        sha = checkpoints.cached_sha256(path)
        return key if sha == checkpoints.BY_NAME["encoder.pt"].sha256 else f"{key}-enc-{sha[:12]}"

    def models(self, progress: Optional[ProgressCallback] = None) -> SV2TTSModels:
        """The models, loaded on first use from the official files (never downloaded implicitly)."""
        with self._load_lock:  # one load, whichever thread asks first
            if self._models is None:
                paths = checkpoints.ensure_checkpoints(checkpoints.NAMES, workspace_models=self.models_dir)
                report(progress, "loading SV2TTS models", 0, 1)
                self._models = SV2TTSModels.from_checkpoints(paths, self.device, self.model_configs)
                self._encoder_file = paths["encoder.pt"]
                report(progress, "loading SV2TTS models", 1, 1)
        return self._models

    # --- training: one stage per run (training.py, training_settings.py) --------------------------
    supports_training = True
    training_losses = TRAINING_LOSSES
    training_steps = 2000  # a fine-tune's length when `train init` is given no epochs

    @classmethod
    def parse_training_settings(cls, values) -> Dict[str, object]:
        return TrainingHparams.from_settings(values).to_settings()

    @classmethod
    def training_defaults_for(cls, settings, train_lines: int):
        return stage_defaults(TrainingHparams.from_settings(settings), train_lines)

    def training_models(self, progress: Optional[ProgressCallback] = None) -> Tuple[SV2TTSModels, List[str]]:
        """Private copies of the three models for a training task: of the loaded ones when this
        engine has them, else from the official files, a missing file giving random weights (its
        name is returned with the others so built)."""
        if self._models is not None:
            return copy.deepcopy(self._models), []
        found = checkpoints.find_checkpoints(checkpoints.NAMES, workspace_models=self.models_dir)
        report(progress, "sv2tts: loading the models to train", 0, 1)
        models, random_names = SV2TTSModels.for_training(
            {name: (where.path if where else None) for name, where in found.items()}, self.device, self.model_configs)
        report(progress, "sv2tts: loading the models to train", 1, 1)
        return models, random_names

    def training_encoder(self, progress: Optional[ProgressCallback] = None) -> Optional[SpeakerEncoder]:
        """A private copy of the speaker encoder to train: of the loaded one, else from encoder.pt
        alone (the other models are not needed); None when encoder.pt is not on this machine."""
        if self._models is not None:
            return copy.deepcopy(self._models.encoder)
        where = checkpoints.find_checkpoint("encoder.pt", workspace_models=self.models_dir)
        if where is None:
            return None
        report(progress, "sv2tts: loading the speaker encoder to train", 0, 1)
        config = (self.model_configs or {}).get("encoder.pt") or EncoderConfig()
        return pretrained_encoder(where.path, config).to(self.device)

    def load_finetune(self, finetune: Finetune) -> "SV2TTSEngine":
        """An engine speaking with a run's fine-tuned synthesizer, vocoder or speaker encoder (the
        other models the stock ones, shared). With a fine-tuned encoder the voice embedding is its
        own: the variant's cache key then hashes that encoder's weights."""
        base = self.models()
        models = finetuned_models(base, finetune.load_state(), finetune.description)
        variant = type(self).with_models(models, self.device)
        variant.models_dir = self.models_dir
        variant._encoder_file = self._encoder_file if models.encoder is base.encoder else None
        return variant

    def training_task(self, spec, progress: Optional[ProgressCallback] = None):
        hparams = TrainingHparams.from_settings(spec.settings)
        build = STAGE_BUILDERS.get(hparams.stage)
        if build is None:
            raise VoxmithError(f"sv2tts cannot train the {hparams.stage} stage yet.")
        return build(self, spec, hparams, progress)

    # --- conditioning ----------------------------------------------------------------------------

    def prepare_conditioning(self, clips: Sequence[Audio],
                             progress: Optional[ProgressCallback] = None) -> Conditioning:
        if not clips:
            raise VoxmithError("sv2tts needs at least one clip of the voice.")
        encoder = self.models(progress).encoder
        embeddings = []
        for i, clip in enumerate(clips):
            report(progress, "sv2tts: speaker embedding", i, len(clips))
            samples = np.asarray(clip.samples, dtype=np.float32)
            if samples.ndim > 1:  # (frames, channels)
                samples = samples.mean(axis=1)
            wav = preprocess_wav(samples, clip.sample_rate_hz)
            if len(wav) < MIN_CLIP_SAMPLES:  # the VAD found (almost) no speech: use the clip as it is
                wav = preprocess_wav(samples, clip.sample_rate_hz, trim_silence=False)
            if not len(wav) or float(np.max(np.abs(wav))) < SILENCE_PEAK:
                continue  # a silent clip says nothing about the voice
            embedding = embed_utterance(encoder, wav)
            if np.isfinite(embedding).all():
                embeddings.append(embedding)
        report(progress, "sv2tts: speaker embedding", len(clips), len(clips))
        if not embeddings:
            raise VoxmithError("None of the voice's clips has sound the speaker encoder can embed (all silent?).")
        clip_embeddings = np.stack(embeddings).astype(np.float32)
        return {"embedding": average_embedding(clip_embeddings), "clip_embeddings": clip_embeddings}

    # --- synthesis -------------------------------------------------------------------------------

    def synthesize(self, text: str, conditioning: Conditioning, settings: EngineSettings, *,
                   seed: int, candidates: int = 1,
                   progress: Optional[ProgressCallback] = None) -> List[Candidate]:
        settings = self.checked_request(text, settings)
        if int(candidates) < 1:
            raise VoxmithError(f"candidates must be at least 1, got {candidates}.")
        if "embedding" not in conditioning:
            raise VoxmithError("The voice's sv2tts conditioning lacks its speaker embedding; prepare it again.")
        ids = text_to_ids(text.strip())
        if not any(c.isalpha() for c in ids_to_text(ids)):
            raise VoxmithError(f"Nothing the sv2tts synthesizer can say in {text!r}: it reads English letters "
                               "and punctuation only.")
        models = self.models(progress)
        takes = []
        for i in range(int(candidates)):
            report(progress, "sv2tts: takes", i, int(candidates))
            takes.append(self._take(models, ids, conditioning, settings, int(seed) + i, progress))
        report(progress, "sv2tts: takes", int(candidates), int(candidates))
        return takes

    def _take(self, models: SV2TTSModels, ids: List[int], conditioning: Conditioning, settings: SV2TTSSettings,
              seed: int, progress: Optional[ProgressCallback]) -> Candidate:
        device = models.device
        chars = torch.tensor([ids], dtype=torch.long, device=device)
        embedding = torch.from_numpy(np.asarray(conditioning["embedding"], dtype=np.float32)).to(device)[None]
        started = time.perf_counter()
        max_frames = int(settings.max_seconds * SAMPLE_RATE_HZ / models.signal.hop_samples)
        generator = torch.Generator(device=device).manual_seed(seed)
        out = models.synthesizer.generate(chars, embedding, generator=generator, max_frames=max_frames)
        mel = trim_trailing_silence(out.postnet_mels[0].cpu(), models.signal.stop_threshold)  # CPU: no sync per frame
        frames = int(out.postnet_mels.shape[-1])
        synth_s = time.perf_counter() - started
        started = time.perf_counter()
        if mel.shape[1] < 2:  # every frame below the silence level: a short silent take, which ranking refuses
            wav = np.zeros(SAMPLE_RATE_HZ // 10)
        elif settings.vocoder == "griffinlim":
            wav = griffin_lim(mel.numpy(), seed, models.signal)
        else:
            generator = torch.Generator(device=device).manual_seed(seed)  # reseeded, as demo_cli --seed
            wav = self._wavernn(models.vocoder, mel, settings, generator, progress)
        vocoder_s = time.perf_counter() - started
        wav = self._finish(np.asarray(wav, dtype=np.float64), settings)
        details = {"vocoder": settings.vocoder, "frames": frames, "speech_frames": int(mel.shape[1]),
                   "stopped": frames < max_frames,
                   "characters": len(ids), "synthesizer_s": round(synth_s, 3), "vocoder_s": round(vocoder_s, 3)}
        return Candidate(samples=wav.astype(np.float32), sample_rate_hz=self.sample_rate_hz, seed=seed,
                         details=details)

    @staticmethod
    def _wavernn(vocoder, mel: torch.Tensor, settings: SV2TTSSettings, generator, progress) -> np.ndarray:
        def step(i: int, total: int) -> None:
            report(progress, "sv2tts: WaveRNN", i, total)

        scaled = (mel / vocoder.config.mel_max_abs_value)[None]  # the vocoder was trained on [-1, 1]; moved to its device
        return vocoder.generate(scaled, generator=generator, batched=bool(settings.batched),
                                target=int(settings.target_samples), overlap=int(settings.overlap_samples),
                                progress=step if progress else None)

    @staticmethod
    def _finish(wav: np.ndarray, settings: SV2TTSSettings) -> np.ndarray:
        if settings.trim_pauses and len(wav) >= SAMPLE_RATE_HZ // 10 and np.any(wav):
            wav = normalize_volume(wav, EncoderAudio().target_dbfs)
            trimmed = trim_long_silences(wav)
            wav = trimmed if len(trimmed) else wav
        peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
        return wav / peak * 0.97 if peak > 1.0 else wav  # never clip


# stage -> builder(engine, spec, hparams, progress) of its `voxmith.training.TrainingTask`.
__all__ = ["SV2TTSEngine", "SV2TTSSettings", "VOCODERS"]
