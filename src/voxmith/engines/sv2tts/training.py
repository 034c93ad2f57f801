"""How the sv2tts engine trains: a run trains one stage (`TrainingHparams.stage`), built here from
the dataset's lines, and a voice speaks with what the run trained (`finetuned_models`).

- synthesizer (synthesizer_training.py): lines prepared as the official preprocessing
  (training_data.py, cached), the Tacotron starting from the official synthesizer.pt, or from random
  weights when it is not on this machine (said in the progress report).
- vocoder (vocoder_training.py): the same prepared lines; mels are the ground truth (ground_truth)
  or synthesizer-aligned by the official synthesizer.pt or by the latest checkpoint of a synthesizer
  run of the workspace (synthesizer_run), cached per batch of lines, keyed by the synthesizer's
  weights; the WaveRNN starting from the official vocoder.pt, or from random weights. With
  synthesizer_run, the run's checkpoints carry that synthesizer too (frozen), so a voice using the
  vocoder run speaks with both fine-tuned models.
- encoder (encoder_training.py): not the dataset's lines but every speaker of the workspace
  (`FinetuneSpec.speakers`: each voice's clips and each dataset's segments, a voice and a dataset of
  the same name being one speaker); the GE2E encoder starting from the official encoder.pt, or from
  random weights (`from_scratch`, or when encoder.pt is not on this machine).

A run's checkpoint holds its stage's model under its stage's prefix ("synthesizer.", "vocoder.",
"encoder."); `finetuned_models` puts it into copies of the stock models, the other models staying stock.
The losses of every stage are declared together (`TRAINING_LOSSES`, stage-prefixed), so one config
format serves all runs and each stage's model returns its own.
"""

from __future__ import annotations

import copy
import hashlib
import io
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from voxmith.engines.base import FinetuneSpec
from voxmith.engines.weights import state_fingerprint
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_write_bytes
from voxmith.progress import ProgressCallback, report

from . import encoder_training, synthesizer_training, vocoder_training
from .bundle import SV2TTSModels, load_strict
from .encoder_data import SpeakerSource
from .encoder_training import EncoderTrainingSettings, EncoderTrainingTask, new_encoder
from .hparams import EncoderConfig
from .synthesizer_training import SynthesizerTrainingTask
from .training_data import LineCache, PreparedLine, prepare_lines
from .training_settings import TrainingHparams
from .vocoder_training import VocoderTrainingTask, gta_mels, vocoder_item

TRAINING_LOSSES = synthesizer_training.LOSSES + vocoder_training.LOSSES + encoder_training.LOSSES
STATE_PREFIXES = {"synthesizer.": ("synthesizer", "synthesizer"), "vocoder.": ("vocoder", "vocoder"),
                  encoder_training.STATE_PREFIX: ("encoder", "speaker encoder")}
GTA_FORMAT = 1
VOCODER_LR = 1e-4  # official voc_lr
VOCODER_BATCH = 100  # official voc_batch_size


def stage_defaults(hparams: TrainingHparams, train_lines: int) -> Dict[str, Dict[str, Any]]:
    """The run settings each stage's official recipe uses (batch size capped by the dataset)."""
    lines = max(1, int(train_lines))
    if hparams.stage == "encoder":  # batches are speakers x utterances (the task's own): batch_size is unused
        return {"schedule": {**encoder_training.ENCODER_TRAINING_DEFAULTS["schedule"], "batch_size": 1,
                             "grad_accumulation": 1}}
    if hparams.stage == "vocoder":
        return {"schedule": {"batch_size": min(VOCODER_BATCH, lines), "grad_accumulation": 1,
                             "learning_rate": VOCODER_LR, "warmup_steps": 0, "milestones": [], "max_grad_norm": 0.0}}
    first = hparams.tts_schedule[0]
    # learning_rate is only shown: tts_schedule sets every step's rate (SynthesizerTrainingTask.learning_rate_at).
    return {"schedule": {"batch_size": min(first[3], lines), "grad_accumulation": 1, "learning_rate": first[1],
                         "warmup_steps": 0, "milestones": [], "max_grad_norm": 1.0}}


def _prepared(engine: Any, spec: FinetuneSpec, hparams: TrainingHparams, models: SV2TTSModels,
              progress: Optional[ProgressCallback]) -> tuple[List[PreparedLine], List[PreparedLine]]:
    cache = LineCache(spec.cache_dir / "sv2tts-lines")
    common = dict(hparams=hparams, signal=models.signal, encoder=lambda: models.encoder.eval(),
                  encoder_id=engine.cache_key(), cache=cache, progress=progress)
    train, skipped = prepare_lines(spec.train, what="training", **common)
    validation, skipped_validation = prepare_lines(spec.validation, what="validation", **common)
    for reason in skipped + skipped_validation:
        report(progress, "sv2tts: line left out", 1, 1, detail=reason)
    if not train:
        reasons = "; ".join((skipped or ["the dataset has no training lines"])[:5])
        raise VoxmithError(f"No dataset line is usable for sv2tts training ({reasons}).")
    return train, validation


def _random_note(progress: Optional[ProgressCallback], name: str) -> None:
    report(progress, f"sv2tts: {name} is not on this machine, so training starts from random weights "
                     "(`voxmith models download sv2tts` fetches the pretrained ones)", 1, 1)


def build_synthesizer_task(engine: Any, spec: FinetuneSpec, hparams: TrainingHparams,
                           progress: Optional[ProgressCallback] = None) -> SynthesizerTrainingTask:
    models, random_names = engine.training_models(progress)
    if "encoder.pt" in random_names:
        raise VoxmithError("Training the sv2tts synthesizer needs the speaker encoder's weights (encoder.pt, "
                           "which the resemblyzer package ships); reinstall resemblyzer or run "
                           "`voxmith models download sv2tts`.")
    if "synthesizer.pt" in random_names:
        _random_note(progress, "synthesizer.pt")
    train, validation = _prepared(engine, spec, hparams, models, progress)
    return SynthesizerTrainingTask(models.synthesizer, train, validation, hparams, spec.batch_size, spec.seed,
                                   pad_value=-models.signal.max_abs_value, all_losses=TRAINING_LOSSES)


def build_vocoder_task(engine: Any, spec: FinetuneSpec, hparams: TrainingHparams,
                       progress: Optional[ProgressCallback] = None) -> VocoderTrainingTask:
    models, random_names = engine.training_models(progress)
    if "encoder.pt" in random_names:
        raise VoxmithError("Preparing sv2tts training lines needs the speaker encoder's weights (encoder.pt); "
                           "reinstall resemblyzer or run `voxmith models download sv2tts`.")
    if not hparams.ground_truth and "synthesizer.pt" in random_names:
        raise VoxmithError("Synthesizer-aligned mels need the pretrained synthesizer (synthesizer.pt), which is not "
                           "on this machine: run `voxmith models download sv2tts`, or train on the dataset's own "
                           "mels with --set ground_truth=True.")
    if "vocoder.pt" in random_names:
        _random_note(progress, "vocoder.pt")
    carried = None
    if hparams.synthesizer_run:
        if spec.run_weights is None:
            raise VoxmithError("synthesizer_run names another training run, which needs a workspace.")
        finetune = spec.run_weights(hparams.synthesizer_run)
        state = finetune.load_state()
        if not any(key.startswith("synthesizer.") for key in state):
            raise VoxmithError(f"Run '{hparams.synthesizer_run}' trained no sv2tts synthesizer; synthesizer_run "
                               "must name a run with --set stage=synthesizer.")
        models = finetuned_models(models, state, finetune.description)
        carried = models.synthesizer
    train, validation = _prepared(engine, spec, hparams, models, progress)
    lines = train + validation
    if hparams.ground_truth:
        mels = [line.mel for line in lines]
    else:
        mels = cached_gta_mels(models.synthesizer, lines, hparams.synthesis_batch_size,
                               -models.signal.max_abs_value, spec, progress)
    c = models.vocoder.config
    items = [vocoder_item(mel, line.wav, hop=c.hop_samples, bits=c.bits, mel_max_abs=c.mel_max_abs_value,
                          preemphasis=c.preemphasis) for mel, line in zip(mels, lines)]
    return VocoderTrainingTask(models.vocoder, items[:len(train)], items[len(train):], hparams.voc_seq_len,
                               spec.batch_size, spec.seed, all_losses=TRAINING_LOSSES, carried_synthesizer=carried)


def build_encoder_task(engine: Any, spec: FinetuneSpec, hparams: TrainingHparams,
                       progress: Optional[ProgressCallback] = None) -> EncoderTrainingTask:
    settings = EncoderTrainingSettings(hparams.speakers_per_batch, hparams.utterances_per_speaker, hparams.umap_every,
                                       hparams.from_scratch)
    encoder = engine.training_encoder(progress)  # the pretrained one (a private copy), None when absent
    if encoder is None and not settings.from_scratch:
        _random_note(progress, "encoder.pt")
    if encoder is None or settings.from_scratch:
        config = encoder.config if encoder is not None else (engine.model_configs or {}).get("encoder.pt")
        encoder = new_encoder(config or EncoderConfig(), spec.seed).to(engine.device)
    sources = [SpeakerSource(name, tuple(files)) for name, files in spec.speakers()]
    return EncoderTrainingTask(encoder, sources, settings, seed=spec.seed, cache_dir=spec.cache_dir, progress=progress,
                               all_losses=TRAINING_LOSSES)


def cached_gta_mels(synthesizer: torch.nn.Module, lines: Sequence[PreparedLine], batch_size: int, pad_value: float,
                    spec: FinetuneSpec, progress: Optional[ProgressCallback]) -> List[np.ndarray]:
    """`gta_mels` of `lines`, each batch cached under a key of the synthesizer's weights and the
    batch's lines (a batch's padding changes its mels, so the batch is the unit)."""
    folder = spec.cache_dir / "sv2tts-gta"
    weights = state_fingerprint(synthesizer)
    out: List[np.ndarray] = []
    for start in range(0, len(lines), batch_size):
        chunk = lines[start:start + batch_size]
        key = hashlib.sha256(f"{GTA_FORMAT}:{weights}:{pad_value}:{[l.key for l in chunk]}".encode()).hexdigest()[:32]
        path = folder / f"{key}.npz"
        mels = None
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    mels = [data[f"m{i}"] for i in range(len(chunk))]
            except Exception:  # damaged: made again
                mels = None
        if mels is None:
            mels = gta_mels(synthesizer, chunk, len(chunk), pad_value, progress)
            buffer = io.BytesIO()
            np.savez(buffer, **{f"m{i}": m for i, m in enumerate(mels)})
            atomic_write_bytes(path, buffer.getvalue())
        out.extend(mels)
    return out


def finetuned_models(base: SV2TTSModels, state: Dict[str, Any], description: str) -> SV2TTSModels:
    """`base` with each model the checkpoint state holds replaced by a fine-tuned copy (the others
    shared, unchanged); VoxmithError when the state holds none or does not fit."""
    models = {"synthesizer": base.synthesizer, "vocoder": base.vocoder, "encoder": base.encoder}
    found = False
    for prefix, (attribute, what) in STATE_PREFIXES.items():
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not part:
            continue
        module = copy.deepcopy(getattr(base, attribute))
        load_strict(module, part, description, f"sv2tts {what} (a run's fine-tuned one)")
        models[attribute] = module.eval()
        found = True
    if not found:
        raise VoxmithError(f"{description} holds no sv2tts model (synthesizer.*, vocoder.*, encoder.*); was it "
                           "trained for another engine?")
    return SV2TTSModels(models["encoder"], models["synthesizer"], models["vocoder"], signal=base.signal)


STAGE_BUILDERS = {"synthesizer": build_synthesizer_task, "vocoder": build_vocoder_task, "encoder": build_encoder_task}

__all__ = ["STAGE_BUILDERS", "TRAINING_LOSSES", "build_encoder_task", "build_synthesizer_task", "build_vocoder_task",
           "cached_gta_mels",
           "finetuned_models", "stage_defaults"]
