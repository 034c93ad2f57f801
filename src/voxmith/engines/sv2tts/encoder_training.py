"""Training the SV2TTS speaker encoder with the GE2E loss (official `encoder/train.py`,
`encoder/model.py`), as a `voxmith.training.TrainingTask`.

Data: speakers' utterances as mel frames and batches of speakers x utterances (`encoder_data.py`).
A step, as officially: embed the batch's 1.6 s windows, the GE2E loss over the (speakers,
utterances) embeddings (`ge2e.py`), backward; the gradients of the similarity scale and bias are
multiplied by 0.01 (here by hooks on the two parameters, so the scaled gradient is what the loop
sums, clips and steps with); then the loop clips the gradient norm to 3 and steps Adam at
1e-4 (`ENCODER_TRAINING_DEFAULTS`; Adam is the loop's AdamW without weight decay). The equal error
rate of each batch (official EER) goes into the run's metrics as `eer`.

Every `umap_every` steps the step's embeddings are projected with UMAP (the `umap-learn` package,
optional: without it the plots are skipped with a note) and drawn coloured by speaker:
`umap_<step>.png` in the run folder, and an image in the run's TensorBoard log.

The encoder starts from the pretrained weights (the engine's encoder.pt) or from scratch (setting
`from_scratch`). The checkpoint's model state is the encoder's under the prefix "encoder." (by
the official key names after it), which the sv2tts engine loads into a copy of its encoder when a
voice uses the run (training.finetuned_models). No validation split (the official training has none):
the validation loss is the GE2E loss of one fixed batch of the training speakers.
"""

from __future__ import annotations

import importlib.util
from collections import deque
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Deque, Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from voxmith.engines.base import TORCH_RNG_LOCK
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path
from voxmith.progress import ProgressCallback, report
from voxmith.training.losses import LossTerm

from .bundle import load_strict, read_model_state
from .encoder_data import (EncoderBatch, EncoderBatches, FrameCache, SpeakerSource, batch_shape, fixed_batch,
                           load_speakers, steps_per_epoch, usable_speakers)
from .ge2e import equal_error_rate, loss_of_similarity, similarity_matrix
from .hparams import EncoderAudio, EncoderConfig
from .speaker_encoder import SpeakerEncoder
from .synthesizer_training import ADAM_OPTIONS

SIMILARITY_GRAD_SCALE = 0.01  # official do_gradient_ops: the scale and bias learn 100x slower
STATE_PREFIX = "encoder."  # the task's model holds the encoder under this name
LOSS = LossTerm("ge2e", 1.0, "GE2E softmax loss: each utterance against every speaker's centroid",
                stage="encoder")
LOSSES = (LOSS,)
# The official optimiser and schedule (params_model.py, train.py): Adam at a constant 1e-4, the
# gradient norm clipped to 3.
ENCODER_TRAINING_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "schedule": {"learning_rate": 1e-4, "max_grad_norm": 3.0, "warmup_steps": 0, "milestones": []},
}
OPTIMIZER_OPTIONS = ADAM_OPTIONS
MIN_UMAP_POINTS = 4  # UMAP's spectral start needs a few more points than its 2 dimensions
UMAP_MAX_SPEAKERS = 10  # as officially: more colours could not be told apart
RECENT_PASSES = 64  # passes whose EER and embeddings are kept for the step's metrics and plot


@dataclass
class EncoderTrainingSettings:
    """Official `params_model.py` and `encoder_train.py` values; batches shrink to fit the data."""

    speakers_per_batch: int = 64
    utterances_per_speaker: int = 10
    umap_every: int = 100  # steps between projection plots (0: never)
    from_scratch: bool = False  # True: random initial weights instead of the pretrained encoder

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> "EncoderTrainingSettings":
        data = dict(data or {})
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise VoxmithError(f"Unknown speaker-encoder training setting(s) {', '.join(unknown)}; "
                               f"known: {', '.join(names)}.")
        settings = cls(**data)
        settings.validate()
        return settings

    def validate(self) -> None:
        for name, low in (("speakers_per_batch", 2), ("utterances_per_speaker", 2), ("umap_every", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise VoxmithError(f"Setting '{name}' must be a whole number of at least {low}, got {value!r}.")
        if not isinstance(self.from_scratch, bool):
            raise VoxmithError(f"Setting 'from_scratch' must be true or false, got {self.from_scratch!r}.")


def _scale_similarity_grad(grad: torch.Tensor) -> torch.Tensor:
    return grad * SIMILARITY_GRAD_SCALE


class EncoderTrainingModel(nn.Module):
    """The encoder with the GE2E loss as its forward (what the loop calls, directly or through DDP).

    In training mode each pass keeps its embeddings and EER for `EncoderTrainingTask.after_step`.
    """

    def __init__(self, encoder: SpeakerEncoder):
        super().__init__()
        self.encoder = encoder
        for parameter in (encoder.similarity_weight, encoder.similarity_bias):
            parameter.register_hook(_scale_similarity_grad)
        # (embeddings (N, D), utterances per speaker, EER) of the passes since the last `after_step`;
        # bounded, because under torchrun only rank 0 calls after_step to empty it.
        self.recent: Deque[tuple] = deque(maxlen=RECENT_PASSES)

    def forward(self, batch: EncoderBatch) -> Dict[str, torch.Tensor]:
        device = self.encoder.similarity_weight.device
        embeds = self.encoder(torch.from_numpy(batch.mels).to(device))
        grouped = embeds.view(batch.speakers, batch.utterances, -1)
        similarity = similarity_matrix(grouped, self.encoder.similarity_weight, self.encoder.similarity_bias)
        if self.training:
            self.recent.append((embeds.detach().float().cpu().numpy(), batch.utterances,
                                equal_error_rate(similarity)))
        return {LOSS.key: loss_of_similarity(similarity)}


def pretrained_encoder(path: Path, config: EncoderConfig = EncoderConfig()) -> SpeakerEncoder:
    """The encoder of an official encoder.pt (the pretrained one, or one this training exported)."""
    encoder = SpeakerEncoder(config)
    load_strict(encoder, read_model_state(Path(path), "speaker encoder"), Path(path), "speaker encoder")
    return encoder


def new_encoder(config: EncoderConfig, seed: int) -> SpeakerEncoder:
    """An encoder with PyTorch's default initial weights drawn from `seed` (official from-scratch
    start), without disturbing the global random stream other threads may be drawing from."""
    with TORCH_RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpeakerEncoder(config)


class EncoderTrainingTask:
    """`voxmith.training.TrainingTask` of the speaker encoder (see the module docstring)."""

    losses = LOSSES
    optimizer_options = OPTIMIZER_OPTIONS

    def __init__(self, encoder: SpeakerEncoder, sources: Sequence[SpeakerSource],
                 settings: EncoderTrainingSettings = EncoderTrainingSettings(), *, seed: int = 0,
                 cache_dir: Optional[Path] = None, audio: EncoderAudio = EncoderAudio(),
                 progress: Optional[ProgressCallback] = None, all_losses: Sequence[LossTerm] = LOSSES):
        settings.validate()
        self.losses = tuple(all_losses)  # the engine's every stage's losses, as the run's config weights them
        self.settings, self.seed, self.audio, self.progress = settings, int(seed), audio, progress
        cache = FrameCache(Path(cache_dir) / "encoder_frames" if cache_dir is not None else None, audio,
                           encoder.config.mel_bands)

        def loading(done: int, total: int) -> None:
            report(progress, "sv2tts encoder: preprocessing utterances", done, total)

        speakers = load_speakers(sources, cache, audio.partial_frames, loading)
        self.shape = batch_shape(speakers, settings.speakers_per_batch, settings.utterances_per_speaker)
        self.speakers = usable_speakers(speakers)
        self.left_out = [s.name for s in speakers if s not in self.speakers]
        self.steps = steps_per_epoch(self.speakers, self.shape)
        self.validation_batch = fixed_batch(self.speakers, self.shape, audio.partial_frames)
        self.model = EncoderTrainingModel(encoder)
        self._epoch_batches: Dict[int, EncoderBatches] = {}
        self.umap_available = importlib.util.find_spec("umap") is not None
        notes = [self.shape.note] if self.shape.note else []
        if self.left_out:
            notes.append(f"left out (fewer than 2 usable utterances): {', '.join(self.left_out)}")
        if settings.umap_every and not self.umap_available:
            notes.append("umap-learn is not installed, so no projection plots (pip install 'voxmith[umap]')")
        self.note = "; ".join(notes)
        if self.note:
            report(progress, "sv2tts encoder", 0, None, detail=self.note)

    def batches(self, epoch: int) -> EncoderBatches:
        if epoch not in self._epoch_batches:  # the loop asks for epoch 0 twice: once to count, once to train
            self._epoch_batches = {epoch: EncoderBatches(self.speakers, self.shape, self.steps, self.seed, epoch,
                                                         self.audio.partial_frames)}
        return self._epoch_batches[epoch]

    @torch.no_grad()
    def validation_loss(self) -> float:
        return float(self.model(self.validation_batch)[LOSS.key])

    def after_step(self, step: int, folder: Path, tensorboard: Any = None) -> Dict[str, float]:
        """The step's mean EER (metrics column `eer`); every `umap_every` steps the projection plot."""
        recent = list(self.model.recent)
        self.model.recent.clear()
        if not recent:
            return {}
        every = self.settings.umap_every
        if every and step % every == 0 and self.umap_available:
            embeds, utterances, _ = recent[-1]
            figure = projection_figure(embeds, utterances, step, seed=self.seed)
            if figure is not None:
                with atomic_path(Path(folder) / f"umap_{step:06d}.png") as tmp:
                    figure.savefig(tmp, dpi=80)
                if tensorboard is not None:
                    tensorboard.add_figure("encoder/umap_projection", figure, step)
        return {"eer": float(np.mean([eer for _, _, eer in recent]))}


def projection_figure(embeds: np.ndarray, utterances_per_speaker: int, step: int, seed: int = 0,
                      max_speakers: int = UMAP_MAX_SPEAKERS):
    """A matplotlib Figure of the 2-D UMAP projection of speaker-major embeddings, one colour per
    speaker (the first `max_speakers`); None when there are too few points to project."""
    import umap  # optional (voxmith[umap]); heavy to import (numba), so only when a plot is due
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    embeds = np.asarray(embeds)[:max_speakers * utterances_per_speaker]
    if len(embeds) < MIN_UMAP_POINTS:
        return None
    speaker = np.arange(len(embeds)) // utterances_per_speaker
    reducer = umap.UMAP(n_neighbors=min(15, len(embeds) - 1), random_state=seed, n_jobs=1)
    projected = reducer.fit_transform(embeds)
    figure = Figure(figsize=(5, 5))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.scatter(projected[:, 0], projected[:, 1], c=speaker, cmap="tab10", vmin=0, vmax=9, s=25)
    ax.set_aspect("equal", "datalim")
    ax.set_title(f"UMAP projection (step {step})")
    return figure


__all__ = ["ENCODER_TRAINING_DEFAULTS", "EncoderTrainingModel", "EncoderTrainingSettings", "EncoderTrainingTask",
           "LOSS", "LOSSES", "OPTIMIZER_OPTIONS", "SIMILARITY_GRAD_SCALE", "new_encoder",
           "pretrained_encoder", "projection_figure"]
