"""Fine-tuning the SV2TTS synthesizer (Tacotron) on a dataset's lines: the official
`synthesizer/train.py` objective and schedule on voxmith's training loop.

    task = SynthesizerTrainingTask(tacotron, lines, validation_lines, hparams, batch_size=12, seed=0)
    train_loop(task, run)

Each batch is collated as the official `collate_synthesizer`: characters padded with 0, mels
padded with silence (-max_abs_value) to the longest + 1 frame, rounded up to a multiple of r, the
stop target 0 before each line's last frame and 1 from there on. The model runs teacher-forced in
train mode (pre-net dropout, zoneout), and the losses are the official three: the decoder's mels
against the target (MSE + L1), the post-net's (MSE), and the stop tokens (binary cross-entropy).

Schedule (`hparams.tts_schedule`): sessions of (r, learning rate, until model step, batch size),
followed by the model's own step count, which the official pretrained synthesizer carries (so a
fine-tune continues in the session where it stopped, as the official `train.py` does when it loads a
checkpoint). `learning_rate_at` gives the loop each step's rate and the forward sets r from the
step. The run's batch size is the sessions' (one per run); the gradient norm is clipped to
tts_clip_grad_norm (the run's max_grad_norm); the optimizer is Adam (the loop's AdamW without weight
decay, `parameter_groups`).

The checkpoint's model state is the Tacotron's under `synthesizer.` (the engine's load_finetune).
"""

from __future__ import annotations

import random
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from voxmith.errors import VoxmithError
from voxmith.training.losses import LossTerm

from .tacotron import Tacotron
from .training_data import PreparedLine
from .training_settings import TrainingHparams

# Adam, as the official trainers use for every stage: the loop's AdamW without weight decay is the same update.
ADAM_OPTIONS = {"weight_decay": 0.0}

STAGE = "synthesizer"
LOSSES = (
    LossTerm("decoder_mel", 1.0, "decoder mels against the target (MSE + L1), before the post-net", stage=STAGE),
    LossTerm("postnet_mel", 1.0, "post-net mels against the target (MSE)", stage=STAGE),
    LossTerm("stop", 1.0, "stop-token binary cross-entropy", stage=STAGE),
)


def collate(lines: Sequence[PreparedLine], pad_value: float) -> dict:
    """Characters padded with 0 and mels with `pad_value` to the longest + 1 frame (the official
    collate; the forward rounds the frames up to a multiple of r), the stop targets, and each line's
    frame count."""
    longest_chars = max(len(line.chars) for line in lines)
    frames = max(line.frames for line in lines) + 1
    bands = lines[0].mel.shape[0]
    chars = torch.zeros(len(lines), longest_chars, dtype=torch.long)
    mels = torch.full((len(lines), bands, frames), float(pad_value))
    for i, line in enumerate(lines):
        chars[i, :len(line.chars)] = torch.from_numpy(line.chars)
        mels[i, :, :line.frames] = torch.from_numpy(line.mel)
    embeddings = torch.from_numpy(np.stack([line.embedding for line in lines]))
    return {"chars": chars, "mels": mels, "embeddings": embeddings,
            "frames": torch.tensor([line.frames for line in lines])}


def stop_targets(frames: torch.Tensor, length: int) -> torch.Tensor:
    """(batch, length): 0 before each line's last frame, 1 from it on (official train.py)."""
    stop = torch.ones(len(frames), length)
    for j, n in enumerate(frames.tolist()):
        stop[j, :n - 1] = 0
    return stop


class SynthesizerTrainer(nn.Module):
    """The Tacotron as the loop trains it: forward(batch) -> the three official losses."""

    def __init__(self, synthesizer: Tacotron, hparams: TrainingHparams, pad_value: float):
        super().__init__()
        self.synthesizer = synthesizer
        self.hparams = hparams
        self.pad_value = float(pad_value)
        for param in synthesizer.parameters():
            param.requires_grad_(True)

    def forward(self, batch: dict) -> Dict[str, torch.Tensor]:
        model = self.synthesizer
        device = model.encoder_proj.weight.device
        if self.training:
            # The official forward counts its passes in `step`; the schedule follows that count.
            model.step += 1
            r = self.hparams.schedule_session(int(model.step) - 1)[0]
            model.decoder.r.fill_(r)
        r = model.r
        mels = batch["mels"]
        extra = (-mels.shape[2]) % r
        if extra:  # official collate: the padded length is a multiple of r
            mels = F.pad(mels, (0, extra), value=self.pad_value)
        mels = mels.to(device)
        stop = stop_targets(batch["frames"], mels.shape[2]).to(device)
        out = model(batch["chars"].to(device), mels, batch["embeddings"].to(device))
        # Binary cross-entropy of probabilities is refused under autocast (misc: mixed_precision): in float32.
        with torch.autocast(device.type, enabled=False):
            stop_loss = F.binary_cross_entropy(out.stop.float(), stop)
        return {f"{STAGE}.decoder_mel": F.mse_loss(out.mels, mels) + F.l1_loss(out.mels, mels),
                f"{STAGE}.postnet_mel": F.mse_loss(out.postnet_mels, mels),
                f"{STAGE}.stop": stop_loss}


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int) -> List[List[int]]:
    """Line indices of each batch of `epoch`, shuffled (as the official loader) with a generator
    seeded from the run's seed and the epoch, so a resumed run sees the same batches."""
    order = list(range(count))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    return [order[i:i + batch_size] for i in range(0, count, batch_size)]


class SynthesizerTrainingTask:
    """`voxmith.training.TrainingTask` of the synthesizer stage (see the module docstring)."""

    losses = LOSSES  # the engine's other stages' terms are added by the engine (one run config)

    def __init__(self, synthesizer: Tacotron, train_lines: Sequence[PreparedLine],
                 validation_lines: Sequence[PreparedLine], hparams: TrainingHparams, batch_size: int, seed: int,
                 pad_value: float, all_losses: Sequence[LossTerm] = LOSSES):
        if not train_lines:
            raise VoxmithError("No dataset line is usable for the synthesizer (see the reasons above); "
                               "add longer transcribed clips.")
        self.model = SynthesizerTrainer(synthesizer, hparams, pad_value)
        self.losses = tuple(all_losses)
        self.hparams = hparams
        self.lines, self.validation = list(train_lines), list(validation_lines)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.start_step = int(synthesizer.step)  # the weights' own step count before this run

    def batches(self, epoch: int) -> List[dict]:
        return [collate([self.lines[i] for i in index], self.model.pad_value)
                for index in epoch_batches(len(self.lines), self.batch_size, self.seed, epoch)]

    def learning_rate_at(self, step: int) -> float:
        return float(self.hparams.schedule_session(self.start_step + step)[1])

    optimizer_options = ADAM_OPTIONS

    def validation_loss(self) -> float:
        """Mean over the validation lines (the training lines when there are none) of the three
        losses summed, teacher-forced in eval mode (no zoneout; the pre-net dropout stays on, as
        the model always runs)."""
        lines = self.validation or self.lines
        total = 0.0
        for start in range(0, len(lines), self.batch_size):
            chunk = lines[start:start + self.batch_size]
            losses = self.model(collate(chunk, self.model.pad_value))
            total += float(sum(losses.values())) * len(chunk)
        return total / len(lines)


__all__ = ["LOSSES", "STAGE", "SynthesizerTrainer", "SynthesizerTrainingTask", "collate", "epoch_batches",
           "stop_targets"]
