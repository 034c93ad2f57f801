"""`GptSovitsEngine`: GPT-SoVITS (v2, v2Pro, v2ProPlus; 32 kHz) behind voxmith's engine interface.

Conditioning (`prepare_conditioning`, no model weights needed): the reference, a 3-10 s stretch of
clean speech picked from the voice's clips (reference.py), its transcript by the bundled Whisper
model (`voxmith.asr`), and the best stretches of other clips as auxiliary references; all kept as
audio (16 and 32 kHz) in the voice's conditioning cache. `conditioning_notes` says which stretch
was chosen and what Whisper heard; a wrong transcript is corrected with the setting
`reference_text` (kept with the voice by `voxmith voices settings NAME --engine gpt-sovits --set
reference_text=...`, or given per request).

Synthesis of one text (each take has its own `torch.Generator` seeded with seed + take number,
nothing global; all takes of a piece are generated in one batch by `generate_semantic_candidates`,
each take exactly what a run asking for that take alone makes):
1. the text is cut into pieces (`text_split`, cut5 by default) and each is turned into phones
   (frontend.py); the reference transcript too (a '.' is added when it ends without a stop);
   Chinese runs get RoBERTa features (`chinese_bert`, loaded on the first Chinese text), every
   other phone zeros; Chinese polyphones are read by G2PW when its files are there (setting
   `chinese_g2p`: auto, g2pw, pypinyin; a result records which read them);
2. the reference's semantic codes: HuBERT features of the 16 kHz reference -> SoVITS quantiser
   (computed once per reference and version, then kept);
3. per piece, the GPT generates semantic codes from reference phones + piece phones, prompted by the
   reference codes (`generate_semantic`), and SoVITS decodes them with the piece's phones and the
   averaged style of the reference spectrograms (`SoVITS.decode`); v2Pro/v2ProPlus add each
   reference's speaker-verification embedding;
4. pieces are joined as the official code joins them: each scaled down if it peaks above 1, then
   0.3 s of silence after it.
The GPT's transformer runs at `t2s_precision` (t2s_precision.py): `auto` is int8 on x86 CPUs with
fbgemm kernels and fp32 elsewhere (CUDA included); the converted view is built once per loaded
model and reused. The precision actually used is what a result's settings record
(`resolved_settings`), so `voxmith reproduce` runs the same arithmetic.
A reference transcript in a language the front end cannot read makes the take "reference-free"
(the official mode without prompt text: style only), which the take's details say.

Fine-tuning (`training_task`, finetune.py): both official stages in one run, SoVITS then the GPT,
on the v2, v2Pro or v2ProPlus models (the run's engine setting `model_version`, v2 by default); the dataset's
features (for v2Pro/v2ProPlus with each line's speaker embedding) are computed once and cached
(training_data.py). A fine-tuned variant (`load_finetune`) speaks with copies of the stock GPT and
SoVITS of the run's version holding the run's weights; HuBERT, the speaker-verification model and
the conditioning are shared with the stock engine.

Weights: the official pretrained files (weights.py), never downloaded implicitly: without them
synthesis stops with an error naming `voxmith models download gpt-sovits`. Tests build tiny
random-weight models (`GptSovitsModels`) and use `with_models`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from voxmith.audio import Audio
from voxmith.asr import get_transcriber
from voxmith.engines.base import Candidate, Conditioning, DeviceNeeds, Engine, EngineSettings, ModelFile
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report

from . import weights
from .finetune import LOSSES, GptSovitsTrainingTask, fine_tuned_models, stage_epochs
from .hubert import HubertFeatures
from .sampling import SamplingSettings
from .sovits_checkpoint import load_sovits
from .sovits_training import MultiPeriodDiscriminator, load_discriminator
from .speaker_verification import SpeakerVerifier
from .spectrogram import reference_spectrogram
from .t2s_checkpoint import load_t2s_checkpoint
from .t2s_generate import generate_semantic_candidates
from .english import default_g2p
from .chinese import chinese_available
from .chinese_bert import ChineseBert
from .g2pw import G2PW, g2pw_available
from .frontend import (LANGUAGE_NAMES_ACCEPTED, SUPPORTED_LANGUAGES, TextPiece, bert_features, prepare_text, read_text,
                       resolve_language)
from .reference import choose_references
from .t2s_precision import T2S_PRECISION_CHOICES, resolve_t2s_precision, t2s_decoder_for
from .text_split import METHODS, STOPS
from .training_data import ChineseReader, load_lines

SAMPLE_RATE_HZ = 32000
CHINESE_G2P_CHOICES = ("auto", "g2pw", "pypinyin")
HUBERT_RATE_HZ = 16000
FRAGMENT_SILENCE_S = 0.3  # the official fragment_interval
MAX_AUX_REFERENCES = 8
PROMPT_CODES_KEPT = 8


@dataclass
class GptSovitsSettings(EngineSettings):
    """Sampling as the official API (top_k 15, top_p 1, temperature 1, repetition_penalty 1.35);
    `speed` (>1 faster), `text_split` (cut0..cut5, see text_split.py), `language` (auto, en, ja, zh, yue),
    `model_version` (v2, v2Pro, v2ProPlus: which pretrained files speak), `noise_scale` of the SoVITS
    prior (official 0.5), `aux_references` (other clips whose styles are averaged in),
    `reference_text` (replaces Whisper's transcript of the reference when set)."""

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    speed: float = 1.0
    text_split: str = "cut5"
    language: str = "auto"
    model_version: str = weights.DEFAULT_VERSION
    noise_scale: float = 0.5
    aux_references: int = 3
    reference_text: str = ""
    # Readings of Chinese polyphones: g2pw (the official model, from context), pypinyin (its word
    # dictionary: the official code's path with G2PW off), auto (g2pw when its files are there).
    chinese_g2p: str = "auto"
    # Weights of the GPT's transformer while generating codes (t2s_precision.py). auto: int8 on x86
    # CPUs (about 1.6x faster per step, benchmarks/results/gpt_sovits_t2s_speed.json), fp32 on GPUs.
    t2s_precision: str = "auto"

    def validate(self) -> None:
        checks = [
            ("top_k", isinstance(self.top_k, int) and not isinstance(self.top_k, bool) and self.top_k >= 1,
             "a whole number of at least 1"),
            ("top_p", _number(self.top_p) and 0 < self.top_p <= 1, "above 0 and at most 1"),
            ("temperature", _number(self.temperature) and 0 <= self.temperature <= 10, "between 0 and 10"),
            ("repetition_penalty", _number(self.repetition_penalty) and 0 < self.repetition_penalty <= 20,
             "above 0 and at most 20"),
            ("speed", _number(self.speed) and 0.25 <= self.speed <= 4, "between 0.25 and 4"),
            ("noise_scale", _number(self.noise_scale) and 0 <= self.noise_scale <= 2, "between 0 and 2"),
            ("aux_references", isinstance(self.aux_references, int) and 0 <= self.aux_references <= MAX_AUX_REFERENCES,
             f"a whole number from 0 to {MAX_AUX_REFERENCES}"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise VoxmithError(f"Setting '{name}' must be {what}, got {getattr(self, name)!r}.")
        for name, allowed in (("text_split", tuple(METHODS)), ("language", LANGUAGE_NAMES_ACCEPTED),
                              ("model_version", weights.VERSIONS), ("t2s_precision", T2S_PRECISION_CHOICES),
                              ("chinese_g2p", CHINESE_G2P_CHOICES)):
            if getattr(self, name) not in allowed:
                raise VoxmithError(f"Setting '{name}' must be one of {', '.join(allowed)}, got "
                                   f"'{getattr(self, name)}'.")
        if not isinstance(self.reference_text, str):
            raise VoxmithError("Setting 'reference_text' must be text.")

    def sampling(self):

        return SamplingSettings(top_k=int(self.top_k), top_p=float(self.top_p),
                                temperature=float(self.temperature),
                                repetition_penalty=float(self.repetition_penalty))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class GptSovitsModels:
    """The three (v2Pro/v2ProPlus: four) models of one version, ready in eval mode."""

    version: str
    t2s: Any  # Text2SemanticModel
    sovits: Any  # SoVITS
    hubert: Any  # HubertFeatures
    early_stop_num: Optional[int]
    speaker_verifier: Any = None  # v2Pro/v2ProPlus: speaker_verification.SpeakerVerifier
    chinese_bert: Any = None  # chinese_bert.ChineseBert; None: loaded from files when Chinese is read
    g2pw: Any = None  # g2pw.G2PW; None: loaded from files when Chinese is read (chinese_g2p)

    @property
    def device(self) -> torch.device:
        return next(self.sovits.parameters()).device


class GptSovitsEngine(Engine):
    name = "gpt-sovits"
    # 2: takes batched and the GPT at t2s_precision (auto: int8 on x86), so version-1 results differ
    version = "2"
    description = ("GPT-SoVITS v2/v2ProPlus (voxmith's implementation of the official models): a GPT "
                   "predicts semantic codes from phones and a 3-10 s reference, SoVITS turns them into "
                   "32 kHz audio. Needs the official pretrained files (voxmith models download gpt-sovits).")
    sample_rate_hz = SAMPLE_RATE_HZ
    device_needs = DeviceNeeds(runs_on_cpu=True, gpu_recommended=False,
                               note="Runs on a CPU (about real time on a laptop per the official figures); "
                                    "downloads ~450 MB of pretrained files once.")
    settings_class = GptSovitsSettings
    languages = SUPPORTED_LANGUAGES
    models_source = f"Hugging Face {weights.REPO_ID}"
    model_versions = weights.VERSIONS
    supports_training = True
    training_losses = LOSSES
    # Official s2 learning rate 1e-4, no lr halving (the official decay is 0.1 % over a run); 8 SoVITS
    # epochs then 15 GPT epochs (finetune.stage_epochs splits the run's epochs 8:15).
    # Batch size and accumulation follow the dataset (train init's rule: effective batch ~16).
    training_defaults = {"schedule": {"learning_rate": 1e-4, "milestones": []}}
    training_epochs = 23

    # --- model files ---------------------------------------------------------------------------

    @classmethod
    def model_files(cls, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> Tuple[ModelFile, ...]:
        found = weights.find_files(tuple(weights.BY_PATH), models_dir, workspace_models)
        return tuple(ModelFile.located(f.path, f.purpose, f.required, f.approx_bytes, found[f.path])
                     for f in weights.FILES)

    @classmethod
    def model_download_dir(cls, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> Path:
        return weights.download_dir(models_dir, workspace_models)

    @classmethod
    def download_models(cls, names: Sequence[str], workspace_models: Optional[Path], models_dir: Optional[Path] = None,
                        progress: Optional[ProgressCallback] = None) -> Dict[str, Path]:
        return weights.download_files(names, cls.model_download_dir(workspace_models, models_dir), progress=progress)

    @classmethod
    def model_version_files(cls, version: str) -> Tuple[str, ...]:
        return weights.version_files(version)

    # --- models --------------------------------------------------------------------------------

    def __init__(self, device: str = "cpu", models_dir=None):
        super().__init__(device, models_dir)
        self._models: Dict[str, GptSovitsModels] = {}
        self._lock = threading.Lock()
        self._codes_cache: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        # Converted GPT views per (version, precision): (the fp32 model they were made from, view).
        self._t2s_views: Dict[Tuple[str, str], Tuple[Any, Any]] = {}
        self._views_lock = threading.Lock()
        self._injected = False  # models given by `with_models`: nothing is loaded from files
        self._chinese_bert: Optional[ChineseBert] = None  # loaded on the first Chinese text
        self._g2pw: Optional[G2PW] = None  # likewise, when chinese_g2p asks for it
        self._only_models = ""  # why an engine with given models speaks no other version (fine-tuned)
        self._finetune_version = ""  # a fine-tuned variant: the version its weights are
        # Where `voxmith models download gpt-sovits` puts NLTK's tagger (English homographs).
        self._tagger_dirs = weights.tagger_dirs(None, models_dir)

    @classmethod
    def with_models(cls, models: GptSovitsModels, device: Optional[str] = None) -> "GptSovitsEngine":
        """An engine around already-built models (tests: tiny random weights; no files needed)."""
        engine = cls(device or str(models.device))
        engine._models[models.version] = models
        engine._injected = True
        return engine

    def models(self, version: str, progress: Optional[ProgressCallback] = None) -> GptSovitsModels:
        with self._lock:
            if version not in self._models:
                if self._injected:
                    raise VoxmithError(self._only_models or
                                       f"This gpt-sovits engine holds only {', '.join(self._models)} models.")
                self._models[version] = self._load(version, progress)
            return self._models[version]

    def _load(self, version: str, progress: Optional[ProgressCallback]) -> GptSovitsModels:

        paths = weights.require_version(version, workspace_models=self.models_dir)
        gpt_path, sovits_path = _version_paths(version, paths)
        report(progress, f"loading GPT-SoVITS {version}", 0, 3)
        t2s = load_t2s_checkpoint(gpt_path, self.device)
        report(progress, f"loading GPT-SoVITS {version}", 1, 3)
        sovits = load_sovits(sovits_path, self.device)
        report(progress, f"loading GPT-SoVITS {version}", 2, 3)
        hubert_folder = paths["chinese-hubert-base/config.json"].parent
        if paths["chinese-hubert-base/pytorch_model.bin"].parent != hubert_folder:
            raise VoxmithError(f"chinese-hubert-base's config.json ({hubert_folder}) and pytorch_model.bin "
                               f"({paths['chinese-hubert-base/pytorch_model.bin'].parent}) must be in one folder: "
                               "move them together, or run `voxmith models download gpt-sovits`.")
        hubert = HubertFeatures.load(hubert_folder, self.device)
        verifier = None
        if sovits.config.is_pro:
            verifier = _load_speaker_verifier(paths["sv/pretrained_eres2netv2w24s4ep4.ckpt"], self.device)
        report(progress, f"loading GPT-SoVITS {version}", 3, 3)
        return GptSovitsModels(version, t2s.model, sovits.model, hubert, t2s.early_stop_num, verifier)

    def resolved_settings(self, settings: EngineSettings) -> EngineSettings:
        """`t2s_precision=auto` replaced by what this engine's device runs (int8 or float32): the
        precision a result's sidecar records, so reproducing it runs the same arithmetic."""
        if not isinstance(settings, GptSovitsSettings):
            settings = GptSovitsSettings.from_dict(settings.to_dict() if settings else None)
        if settings.t2s_precision == "auto":
            precision, _ = resolve_t2s_precision("auto", self.device)
            settings = dataclasses.replace(settings, t2s_precision=precision)
        settings = self._finetune_version_of(settings)
        if settings.chinese_g2p == "auto":
            settings = dataclasses.replace(settings, chinese_g2p="g2pw" if self._g2pw_present(settings) else "pypinyin")
        return settings

    def _finetune_version_of(self, settings: GptSovitsSettings) -> GptSovitsSettings:
        """A variant fine-tuned from v2Pro/v2ProPlus speaks its version where the request leaves
        `model_version` at the default (a voice using the run); another version asked for is refused
        by `models`."""
        if self._finetune_version and settings.model_version == weights.DEFAULT_VERSION:
            return dataclasses.replace(settings, model_version=self._finetune_version)
        return settings

    def _g2pw_present(self, settings: GptSovitsSettings) -> bool:
        if self.stock is not self:  # a fine-tuned variant reads Chinese with the stock engine's G2PW
            return self.stock._g2pw_present(settings)
        if self._injected:
            models = self._models.get(settings.model_version)
            return models is not None and models.g2pw is not None
        return chinese_available() and g2pw_available() and \
            weights.find_g2pw(workspace_models=self.models_dir) is not None

    def g2pw_for(self, settings: GptSovitsSettings) -> Optional[G2PW]:
        """The G2PW model `settings.chinese_g2p` asks for, or None (pypinyin's readings): the
        models' own (tests), else the official G2PWModel folder, loaded once per engine."""
        if settings.chinese_g2p == "pypinyin" or not self._g2pw_present(settings):
            if settings.chinese_g2p == "g2pw" and not g2pw_available():
                raise VoxmithError("chinese_g2p=g2pw needs OpenCC and onnxruntime: pip install 'voxmith[zh]' "
                                   "(or --set chinese_g2p=pypinyin).")
            if settings.chinese_g2p == "g2pw":
                raise VoxmithError("chinese_g2p=g2pw needs the G2PW model: run `voxmith models download gpt-sovits "
                                   f"--only {weights.G2PW_ZIP}` (or --set chinese_g2p=pypinyin).")
            return None
        if self.stock is not self:
            return self.stock.g2pw_for(settings)
        if self._injected:
            return self._models[settings.model_version].g2pw
        with self._lock:
            if self._g2pw is None:
                folder = weights.find_g2pw(workspace_models=self.models_dir)
                tokenizer = weights.require_chinese(workspace_models=self.models_dir) / "tokenizer.json"
                self._g2pw = G2PW(folder, tokenizer)
            return self._g2pw

    def t2s_for(self, models: GptSovitsModels, precision: str):
        """The GPT of `models` at `precision` (resolved, not auto): the model itself for float32, else
        a converted view made once per loaded model (two threads asking at once build it once)."""
        if precision == "float32":
            return models.t2s
        key = (models.version, precision)
        with self._views_lock:
            entry = self._t2s_views.get(key)
            if entry is None or entry[0] is not models.t2s:
                entry = (models.t2s, t2s_decoder_for(models.t2s, precision))
                self._t2s_views[key] = entry
            return entry[1]

    # --- fine-tuning ---------------------------------------------------------------------------

    @classmethod
    def parse_training_settings(cls, values) -> Dict[str, Any]:
        """One setting of its own: `model_version` (`train init --set model_version=v2ProPlus`), the
        version fine-tuned: v2 (default), v2Pro or v2ProPlus."""
        values = dict(values or {})
        unknown = sorted(set(values) - {"model_version"})
        if unknown:
            raise VoxmithError(f"The {cls.name} engine has one training setting, model_version; not "
                               f"{', '.join(unknown)}.")
        return {"model_version": training_version(str(values.get("model_version") or ""))}

    def training_task(self, spec, progress: Optional[ProgressCallback] = None):
        """Both official stages on copies of the stock v2 models (see finetune.py); the dataset's
        phones, BERT features (Chinese lines), HuBERT features and codes come from the per-dataset cache
        (training_data.py)."""

        if self.stock is not self:  # a fine-tuned variant: training starts from the stock weights
            return self.stock.training_task(spec, progress)
        stage_epochs(spec.epochs or self.training_epochs)  # refuses a run too short for two stages
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise VoxmithError("gpt-sovits fine-tuning runs in one process: each pass trains one stage's "
                               "weights, which DistributedDataParallel refuses. Run `voxmith train run` "
                               "without torchrun.")
        version = self.parse_training_settings(spec.settings)["model_version"]
        models = self.models(version, progress)
        if models.sovits.config.is_pro and models.speaker_verifier is None:
            raise VoxmithError(f"Fine-tuning GPT-SoVITS {version} needs the speaker-verification model "
                               "(voxmith models download gpt-sovits --version v2ProPlus).")
        sovits = self._trainable_sovits(models, progress)
        # Chinese transcripts: RoBERTa features and G2PW readings (when its model is there), loaded
        # only for a dataset that has them; a missing RoBERTa is refused with its download command.
        def chinese() -> ChineseReader:
            return ChineseReader(self.chinese_bert(models), self.g2pw_for(GptSovitsSettings(model_version=version)))

        lines = load_lines(list(spec.train) + list(spec.validation), spec.cache_dir, models.hubert, models.sovits,
                           verifier=models.speaker_verifier if models.sovits.config.is_pro else None,
                           chinese=chinese, progress=progress)
        with torch.random.fork_rng(devices=[]):  # the discriminator's random start, seeded by the run
            torch.manual_seed(int(spec.seed))
            discriminator = self._training_discriminator(version)
        t2s = copy.deepcopy(models.t2s)
        return GptSovitsTrainingTask(sovits, discriminator.to(self.device), t2s, lines[:len(spec.train)],
                                     lines[len(spec.train):], spec.batch_size, spec.seed,
                                     spec.epochs or self.training_epochs)

    def _training_discriminator(self, version: str) -> torch.nn.Module:
        """SoVITS' discriminator: the official pretrained one of the version (s2D2333k.pth,
        v2Pro/s2Dv2Pro.pth, v2Pro/s2Dv2ProPlus.pth) where it is found (in voxmith's models folders or an
        existing GPT-SoVITS install), as the official recipe starts; else random weights. Tests give a
        toy one (the full-size one costs seconds per pass on a CPU)."""
        found = weights.find_file(weights.PRETRAINED_DISCRIMINATORS[version], workspace_models=self.models_dir)
        if found is None:
            return MultiPeriodDiscriminator(version)
        try:
            return load_discriminator(found.path, version).to(self.device)
        except ValueError as err:
            raise VoxmithError(f"{err}. Delete or replace that file (it only seeds fine-tuning).") from None

    def _trainable_sovits(self, models: GptSovitsModels, progress: Optional[ProgressCallback]):
        """A private copy of the stock SoVITS with its posterior encoder (which inference drops)."""
        if hasattr(models.sovits, "enc_q"):
            return copy.deepcopy(models.sovits)
        if self._injected:
            raise VoxmithError("These gpt-sovits models have no SoVITS posterior encoder, which fine-tuning needs.")
        paths = weights.require_version(models.version, workspace_models=self.models_dir)
        report(progress, "loading SoVITS for training", 0, 1)
        return load_sovits(_version_paths(models.version, paths)[1], self.device, with_posterior=True).model

    def load_finetune(self, finetune) -> "GptSovitsEngine":
        """A variant speaking with the run's GPT and SoVITS (copies of the stock models of the version
        the run trained, its config's engine setting `model_version`)."""

        settings = ((finetune.config or {}).get("engine") or {}).get("settings") or {}
        version = self.parse_training_settings({"model_version": settings.get("model_version") or ""})["model_version"]
        models = self.models(version)
        with self._lock:
            t2s, sovits = copy.deepcopy(models.t2s), copy.deepcopy(models.sovits)
        fine_tuned_models(finetune.load_state(), sovits, t2s)
        variant = GptSovitsEngine(self.device, self.models_dir)
        variant.name = self.name  # a registered subclass's name: results and runs record it
        variant._models[version] = dataclasses.replace(models, t2s=t2s.eval(), sovits=sovits.eval())
        variant._injected = True  # speaks the run's version only; nothing else is loaded from files
        variant._finetune_version = version
        variant._only_models = (f"The fine-tuned weights ({finetune.description}) are GPT-SoVITS {version}: speak "
                                f"with --set model_version={version}, or with --stock for other versions.")
        return variant

    # --- conditioning --------------------------------------------------------------------------

    def prepare_conditioning(self, clips: Sequence[Audio],
                             progress: Optional[ProgressCallback] = None) -> Conditioning:
        if not clips:
            raise VoxmithError("gpt-sovits needs at least one clip of the voice.")
        if not self._injected:
            weights.check_any_version(workspace_models=self.models_dir)
        report(progress, "gpt-sovits: choosing the reference", 0, 2)
        main, aux = choose_references(clips, MAX_AUX_REFERENCES)
        reference_16k = main.samples(clips[main.clip_index], HUBERT_RATE_HZ)
        report(progress, "gpt-sovits: transcribing the reference", 1, 2)
        transcript = self._transcribe(reference_16k)
        aux_32k = [s.samples(clips[s.clip_index], SAMPLE_RATE_HZ) for s in aux]
        aux_16k = [s.samples(clips[s.clip_index], HUBERT_RATE_HZ) for s in aux]
        report(progress, "gpt-sovits: choosing the reference", 2, 2)
        described = [{"clip": s.clip_label, "start_s": round(s.start_s, 2), "end_s": round(s.end_s, 2),
                      "speech_ratio": round(s.speech_ratio, 3), "snr_db": round(s.snr_db, 1)} for s in [main, *aux]]
        return {
            "reference_16k": reference_16k,
            "reference_32k": main.samples(clips[main.clip_index], SAMPLE_RATE_HZ),
            "reference_text": np.asarray(transcript.text),
            "reference_language": np.asarray(transcript.language or ""),
            "aux_16k": np.concatenate(aux_16k) if aux_16k else np.zeros(0, np.float32),
            "aux_16k_lengths": np.asarray([a.shape[0] for a in aux_16k], dtype=np.int64),
            "aux_32k": np.concatenate(aux_32k) if aux_32k else np.zeros(0, np.float32),
            "aux_32k_lengths": np.asarray([a.shape[0] for a in aux_32k], dtype=np.int64),
            "stretches": np.asarray(json.dumps(described)),
        }

    def _transcribe(self, reference_16k: np.ndarray):

        device = self.device if str(self.device).startswith("cuda") else "cpu"
        return get_transcriber(None, device).transcribe(reference_16k, HUBERT_RATE_HZ, language=None)

    def conditioning_notes(self, conditioning: Conditioning) -> Optional[dict]:
        stretches = json.loads(str(conditioning["stretches"])) if "stretches" in conditioning else []
        if not stretches:
            return None
        return {"reference": {**stretches[0], "text": str(conditioning.get("reference_text", "")),
                              "language": str(conditioning.get("reference_language", ""))},
                "aux_references": stretches[1:],
                "edit": "correct a wrong transcript with: voxmith voices settings VOICE --engine gpt-sovits "
                        "--set reference_text=\"...\""}

    # --- synthesis -----------------------------------------------------------------------------

    def synthesize(self, text: str, conditioning: Conditioning, settings: EngineSettings, *,
                   seed: int, candidates: int = 1,
                   progress: Optional[ProgressCallback] = None) -> List[Candidate]:
        settings = self._finetune_version_of(self.checked_request(text, settings))
        if int(candidates) < 1:
            raise VoxmithError(f"candidates must be at least 1, got {candidates}.")
        missing = [k for k in ("reference_16k", "reference_32k", "reference_text") if k not in conditioning]
        if missing:
            raise VoxmithError(f"The voice's gpt-sovits conditioning lacks {', '.join(missing)}; prepare it again.")
        default_g2p(self._tagger_dirs)  # the first G2P made looks for the tagger in the models folder
        g2pw = self.g2pw_for(settings) if self._reads_chinese(text, conditioning, settings) else None
        pieces = prepare_text(text, settings.language, settings.text_split, g2pw)
        if not pieces:
            raise VoxmithError("There is nothing to say in this text for gpt-sovits (only symbols or spaces).")
        precision = resolve_t2s_precision(settings.t2s_precision, self.device)[0]
        models = self.models(settings.model_version, progress)
        prompt = self._prompt(conditioning, settings, models, g2pw)
        seeds = [int(seed) + take for take in range(int(candidates))]
        made = self._takes(pieces, prompt, settings, models, self.t2s_for(models, precision), seeds, progress)
        return [Candidate(samples, SAMPLE_RATE_HZ, take_seed, details={**details, "t2s_precision": precision})
                for take_seed, (samples, details) in zip(seeds, made)]

    @staticmethod
    def _reads_chinese(text: str, conditioning: Conditioning, settings: GptSovitsSettings) -> bool:
        """Whether the text or the reference transcript is read by the Chinese front end."""
        if "zh" not in SUPPORTED_LANGUAGES:
            return False
        reference = settings.reference_text or str(conditioning.get("reference_text", ""))
        reference_language = str(conditioning.get("reference_language", ""))
        if settings.reference_text:
            reference_language = resolve_language(settings.reference_text, "auto")
        return resolve_language(text, settings.language) == "zh" or (bool(reference) and reference_language == "zh")

    def _prompt(self, conditioning: Conditioning, settings: GptSovitsSettings, models: GptSovitsModels,
                g2pw: Optional[G2PW] = None) -> dict:
        """What every piece shares: reference phones and codes, style spectrograms, speaker embeddings."""

        reference_text = (settings.reference_text or str(conditioning["reference_text"])).strip("\n").strip()
        language = str(conditioning.get("reference_language", ""))
        if settings.reference_text:  # the user's words: read in the language their script calls for
            language = resolve_language(settings.reference_text, "auto")
        ref_16k = np.asarray(conditioning["reference_16k"], dtype=np.float32)
        phones: List[int] = []
        runs: tuple = ()
        reference_free = not reference_text or (language not in ("", *SUPPORTED_LANGUAGES))
        if not reference_free:
            language = language or "en"
            if reference_text[-1] not in STOPS:
                reference_text += "." if language == "en" else "\u3002"
            reading = read_text(reference_text, language, g2pw)
            phones, runs = list(reading.phone_ids), reading.runs
        waves_32k = [np.asarray(conditioning["reference_32k"], dtype=np.float32)]
        waves_32k += _split(conditioning.get("aux_32k"), conditioning.get("aux_32k_lengths"))[:settings.aux_references]
        waves_16k = [ref_16k] + _split(conditioning.get("aux_16k"),
                                       conditioning.get("aux_16k_lengths"))[:settings.aux_references]
        device = models.device
        specs = [reference_spectrogram(w).to(device) for w in waves_32k]
        sv = None
        if models.speaker_verifier is not None:
            sv = [models.speaker_verifier.embed(torch.from_numpy(w).to(device)) for w in waves_16k]
        codes = None if reference_free else self._prompt_codes(ref_16k, models)
        return {"phones": phones, "runs": runs, "codes": codes, "specs": specs, "sv": sv, "reference_free": reference_free,
                "reference_text": reference_text, "references": len(specs)}

    def chinese_bert(self, models: GptSovitsModels) -> ChineseBert:
        """The RoBERTa that gives Chinese text its BERT features: the models' own (tests), else
        chinese-roberta-wwm-ext-large from the models folders, loaded once per engine."""
        if models.chinese_bert is not None:
            return models.chinese_bert
        if self.stock is not self:  # a fine-tuned variant: the stock engine's RoBERTa (never fine-tuned)
            return self.stock.chinese_bert(models)
        if self._injected:
            raise VoxmithError("These gpt-sovits models have no Chinese BERT model, which Chinese text needs.")
        with self._lock:
            if self._chinese_bert is None:
                folder = weights.require_chinese(workspace_models=self.models_dir)
                self._chinese_bert = ChineseBert.load(folder, self.device)
            return self._chinese_bert

    def _prompt_codes(self, ref_16k: np.ndarray, models: GptSovitsModels) -> torch.Tensor:
        key = models.version + hashlib.sha1(ref_16k.tobytes()).hexdigest()
        with self._lock:
            if key in self._codes_cache:
                self._codes_cache.move_to_end(key)
                return self._codes_cache[key]
        features = models.hubert.reference_features(ref_16k)
        codes = models.sovits.extract_codes(features.to(models.device))[0].long()
        with self._lock:
            self._codes_cache[key] = codes
            while len(self._codes_cache) > PROMPT_CODES_KEPT:
                self._codes_cache.popitem(last=False)
        return codes

    def _takes(self, pieces: Sequence[TextPiece], prompt: dict, settings: GptSovitsSettings,
               models: GptSovitsModels, t2s, seeds: Sequence[int],
               progress: Optional[ProgressCallback]) -> List[Tuple[np.ndarray, dict]]:
        """One (samples, details) per seed. Per piece, the GPT makes every take's codes in one batch,
        then SoVITS decodes each take with its own generator; each generator sees the same draws in
        the same order (piece 1 codes, piece 1 decode, piece 2 codes...) as in a run of its take alone."""

        generators = [torch.Generator().manual_seed(s) for s in seeds]
        device = models.device
        silence = np.zeros(int(SAMPLE_RATE_HZ * FRAGMENT_SILENCE_S), dtype=np.float32)
        audio: List[List[np.ndarray]] = [[] for _ in seeds]
        codes_made: List[List[int]] = [[] for _ in seeds]
        needs_bert = any(run.language == "zh" for piece in pieces for run in (*prompt["runs"], *piece.runs))
        bert = self.chinese_bert(models) if needs_bert else None
        # The reference transcript's features are the same before every piece: one RoBERTa pass.
        prompt_features = bert_features(prompt["runs"], bert)
        for index, piece in enumerate(pieces):
            report(progress, "gpt-sovits: synthesising", index, len(pieces))
            all_phones = list(prompt["phones"]) + list(piece.phone_ids)
            features = np.concatenate([prompt_features, bert_features(piece.runs, bert)], axis=1)
            takes = generate_semantic_candidates(t2s, torch.tensor(all_phones, dtype=torch.long),
                                                 torch.from_numpy(features), prompt["codes"],
                                                 settings.sampling(), generators,
                                                 early_stop_num=models.early_stop_num)
            phone_ids = torch.tensor(piece.phone_ids, dtype=torch.long, device=device)
            for take, (codes, generator) in enumerate(zip(takes, generators)):
                codes_made[take].append(int(codes.numel()))
                if codes.numel() == 0:
                    continue
                wave = models.sovits.decode(codes.to(device), phone_ids, prompt["specs"], speed=float(settings.speed),
                                            noise_scale=float(settings.noise_scale), sv_embedding=prompt["sv"],
                                            generator=generator)[0].float().cpu().numpy()
                peak = float(np.abs(wave).max()) if wave.size else 0.0
                audio[take] += [wave / peak if peak > 1 else wave, silence]
        report(progress, "gpt-sovits: synthesising", len(pieces), len(pieces))
        made = []
        for take in range(len(seeds)):
            samples = np.concatenate(audio[take]).astype(np.float32) if audio[take] else silence.copy()
            details = {"version": models.version, "pieces": [p.normalized for p in pieces], "codes": codes_made[take],
                       "reference_text": prompt["reference_text"], "reference_free": prompt["reference_free"],
                       "references": prompt["references"]}
            made.append((samples, details))
        return made


def training_version(version: str) -> str:
    """The model version a run fine-tunes ("" -> the default); VoxmithError naming what is supported."""
    version = version or weights.DEFAULT_VERSION
    if version in weights.VERSIONS:
        return version
    if version in ("v1", "v3", "v4"):
        raise VoxmithError(f"voxmith does not fine-tune GPT-SoVITS {version} (v3/v4 train a LoRA on their CFM "
                           f"decoder, v1 has another phone set); fine-tune {', '.join(weights.VERSIONS)}.")
    raise VoxmithError(f"Unknown GPT-SoVITS version '{version}' to fine-tune: choose {', '.join(weights.VERSIONS)}.")


def _split(flat, lengths) -> List[np.ndarray]:
    if flat is None or lengths is None:
        return []
    sizes = [int(n) for n in np.asarray(lengths).reshape(-1)]
    flat = np.asarray(flat, dtype=np.float32)
    return [part for part in np.split(flat, np.cumsum(sizes)[:-1])] if sizes else []


def _version_paths(version: str, paths: Dict[str, Path]) -> Tuple[Path, Path]:
    gpt = next(p for name, p in paths.items() if name.endswith(".ckpt") and not name.startswith("sv/"))
    sovits = next(p for name, p in paths.items() if name.endswith(".pth"))
    return gpt, sovits


def _load_speaker_verifier(path: Path, device: str):
    return SpeakerVerifier.load(path, device)
