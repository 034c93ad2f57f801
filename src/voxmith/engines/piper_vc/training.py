"""Fine-tuning data and task for piper-vc: the dataset's transcribed lines become parallel data.

For every `TrainingLine`, joe says the line's text and both recordings go through WORLD (the same
analysis as enrollment). The enrolled conversion of the training lines (warp search, statistics,
ridge; `enrollment.fit_parallel`) is the starting point; joe's frames are then re-aligned by DTW
to the target's *after* that conversion (`parallel.align_utterance`), and `postnet.FinetunedConversion` learns the residual on the aligned frames.

Everything expensive is cached under `FinetuneSpec.cache_dir/piper-vc-<version>-ft<CACHE_VERSION>/`:
`lines/<hash>.npz` per line (keyed by the audio bytes and the text) and `base-<hash>.npz` per set
of training lines (the fitted base conversion, warp search included). The DTW on converted
features is redone on each start (well under a second per line). Writes are atomic, so an
interrupted preparation resumes with the lines already done.

What the trained model does *not* learn: F0 (log-F0 mean and spread come from the base
conversion of the training lines) and speaking rate (the voice's, as joe says it: engine._finetune_rate).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from voxmith.audio import load_audio
from voxmith.engines.base import TORCH_RNG_LOCK, FinetuneSpec, TrainingLine
from voxmith.engines.piper_vc import conversion, enrollment, parallel, postnet, world
from voxmith.engines.piper_vc.parallel import AlignedLine, collate
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path
from voxmith.progress import ProgressCallback, report
from voxmith.speaker import get_speaker_encoder, mean_embedding
from voxmith.training.losses import LossTerm

# Bump when the cached features or alignments would come out differently.
CACHE_VERSION = "1"


@dataclass
class LineFeatures:
    """One line's cached analysis: the target clip and joe saying its text."""

    # Aperiodicity kept as its bands (postnet.ap_bands_db) on both sides: full D4C spectra take
    # ~8 MB per 10 s line, and training never resynthesises these lines.
    utterance: parallel.ParallelUtterance
    embedding: np.ndarray  # GE2E of the prepared clip


def _digest(*parts: bytes) -> str:
    h = hashlib.sha1()
    for part in parts:
        h.update(hashlib.sha1(part).digest())
    return h.hexdigest()[:20]


def _save_npz(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def line_key(line: TrainingLine) -> str:
    try:
        audio = Path(line.audio_path).read_bytes()
    except OSError as err:
        raise VoxmithError(f"Training line audio '{line.audio_path}' cannot be read: {err}.") from None
    return _digest(audio, line.text.strip().encode("utf-8"))


def _analyse_line(line: TrainingLine) -> Dict[str, np.ndarray]:
    audio = load_audio(line.audio_path)
    prepared = parallel.prepare_clip(audio.samples, audio.sample_rate_hz)
    u = parallel.parallel_utterance(prepared, line.text)
    arrays = {"tgt_f0": u.target.f0, "tgt_mcep": u.target.mcep, "tgt_ap": postnet.ap_bands_db(u.target.ap),
              "embedding": get_speaker_encoder("cpu").embed(prepared, world.SAMPLE_RATE_HZ)}
    if u.joe is not None:
        arrays.update(joe_f0=u.joe.f0, joe_mcep=u.joe.mcep, joe_ap=postnet.ap_bands_db(u.joe.ap), path=u.path)
    return arrays


def load_line(line: TrainingLine, folder: Path) -> LineFeatures:
    """The line's features from the cache, computed and stored first if missing."""
    path = folder / "lines" / f"{line_key(line)}.npz"
    if not path.is_file():
        _save_npz(path, _analyse_line(line))
    with np.load(path) as data:
        a = {k: data[k] for k in data.files}
    target = world.WorldFeatures(a["tgt_f0"], a["tgt_mcep"], a["tgt_ap"])
    joe = world.WorldFeatures(a["joe_f0"], a["joe_mcep"], a["joe_ap"]) if "joe_f0" in a else None
    utt = parallel.ParallelUtterance(target, line.text, joe, a.get("path"))
    return LineFeatures(utt, a["embedding"])


def load_base(train: Sequence[LineFeatures], keys: Sequence[str], folder: Path,
              progress: Optional[ProgressCallback]) -> conversion.ConversionParams:
    """The enrolled conversion of the training lines, exactly as `prepare_conditioning` would fit
    it from those clips (warp search included); cached per set of lines."""
    path = folder / f"base-{_digest(*(k.encode() for k in sorted(keys)))}.npz"
    if not path.is_file():
        result = enrollment.fit_parallel(
            [f.utterance for f in train], mean_embedding([f.embedding for f in train]),
            ridge_mix=1.0, cov_mix=conversion.DEFAULT_COV_MIX,
            progress=lambda stage, done, total: report(progress, stage, done, total))
        _save_npz(path, result.params.to_arrays())
    with np.load(path) as data:
        return conversion.ConversionParams.from_arrays({k: data[k] for k in data.files})


# The residual network's one loss (its forward's key): piper-vc's configs called it "mel" when every
# engine's losses had TorToiSe's names.
LOSSES = (LossTerm("cepstral", 1.0, "error of the converted mel-cepstrum, its global variance and "
                   "aperiodicity against the target's", aliases=("mel",)),)


class PiperVCTrainingTask:
    """`voxmith.training.TrainingTask` for piper-vc (see the module docstring)."""

    losses = LOSSES

    def __init__(self, model: postnet.FinetunedConversion, train: List[AlignedLine],
                 validation: List[AlignedLine], batch_size: int, seed: int):
        self.model = model
        self.train_lines = train
        # Without validation lines the training lines stand in: the loss then measures fit, not
        # generalisation, but the loop's "best checkpoint" still has a number to compare.
        self.validation_lines = validation or train
        self.validation_is_training = not validation
        self.batch_size = max(1, int(batch_size))
        self.seed = int(seed)

    def batches(self, epoch: int) -> List[Dict[str, torch.Tensor]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.train_lines), generator=gen).tolist()
        return [collate([self.train_lines[i] for i in order[k:k + self.batch_size]])
                for k in range(0, len(order), self.batch_size)]

    def validation_loss(self) -> float:
        """Frame-weighted mean loss over the validation lines (the unwrapped model, no grad)."""
        was_training = self.model.training
        self.model.eval()
        total, weight = 0.0, 0.0
        try:
            with torch.no_grad():
                for k in range(0, len(self.validation_lines), self.batch_size):
                    batch = collate(self.validation_lines[k:k + self.batch_size])
                    frames = float(batch["mask"].sum())
                    total += float(self.model.loss(batch)) * frames
                    weight += frames
        finally:
            self.model.train(was_training)
        return total / max(weight, 1.0)


def cache_folder(spec: FinetuneSpec, engine_cache_key: str) -> Path:
    return Path(spec.cache_dir) / f"{engine_cache_key}-ft{CACHE_VERSION}"


def build_task(spec: FinetuneSpec, engine_cache_key: str, progress: Optional[ProgressCallback] = None,
               config: postnet.PostnetConfig = postnet.PostnetConfig()) -> PiperVCTrainingTask:
    """Analyse (or load) every line, fit the base conversion, align, and build the task."""
    if spec.lora is not None:
        raise VoxmithError("piper-vc trains its small conversion network whole; turn LoRA off "
                           "(lora: enabled: false) for this engine.")
    if not spec.train:
        raise VoxmithError("The dataset has no training lines; piper-vc needs transcribed clips to train on.")
    folder = cache_folder(spec, engine_cache_key)
    lines = list(spec.train) + list(spec.validation)
    keys, features = [], []
    for k, line in enumerate(lines):
        report(progress, "analysing lines", k, len(lines), detail=Path(line.audio_path).name, unit="line")
        keys.append(line_key(line))
        features.append(load_line(line, folder))
    report(progress, "analysing lines", len(lines), len(lines), unit="line")
    n_train = len(spec.train)
    if not any(f.utterance.joe is not None for f in features[:n_train]):
        raise VoxmithError("No training line has two or more words of transcript; piper-vc needs "
                           "transcribed speech to learn from.")
    base = load_base(features[:n_train], keys[:n_train], folder, progress)
    params = parallel.training_params(base)
    aligned = []
    for k, f in enumerate(features):
        report(progress, "aligning lines", k, len(features), unit="line")
        aligned.append(parallel.align_utterance(f.utterance, params))
    report(progress, "aligning lines", len(features), len(features), unit="line")
    with TORCH_RNG_LOCK, torch.random.fork_rng():  # seeded initial weights; the caller's RNG untouched
        torch.manual_seed(spec.seed)
        model = postnet.FinetunedConversion(base, config)
    train = [a for a in aligned[:n_train] if a is not None]
    validation = [a for a in aligned[n_train:] if a is not None]
    return PiperVCTrainingTask(model, train, validation, spec.batch_size, spec.seed)
