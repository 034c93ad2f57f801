"""Fine-tuning the SV2TTS vocoder (WaveRNN, RAW mode) on a dataset's lines: the official
`vocoder/train.py` objective on voxmith's training loop.

    task = VocoderTrainingTask(wavernn, items, validation_items, seq_len=1000, batch_size=100, seed=0)
    train_loop(task, run)

Each line gives a mel (ground truth, or synthesizer-aligned "GTA" mels made by `gta_mels`, the
official `--ground_truth` switch) scaled to [-1, 1], and its waveform pre-emphasised, clipped, cut
to the mel's length and mu-law quantised to 2**bits levels (`vocoder_item`, official
`VocoderDataset`). A batch takes one random window of each line (`windows`, official
`collate_vocoder`): `seq_len` samples and the mel frames around them with `pad` frames of context;
the model reads the previous samples and predicts each next level, and the loss is the
cross-entropy. Windows are drawn from a generator seeded from the run's seed, the epoch and the
batch, so a resumed run sees the same windows.

Official schedule: Adam at voc_lr (1e-4, the run's learning rate, constant), batches of
voc_batch_size (100) lines; the run's epochs replace the official 350.

GTA mels (official `synthesizer/synthesize.py` run_synthesis): the synthesizer teacher-forced in
eval mode with its dropout off, the dataset's lines in their order in batches of
`synthesis_batch_size`, padded as for training, each output cut to its line's frames.

The checkpoint's model state is the WaveRNN's under `vocoder.` (the engine's load_finetune).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import lfilter
from torch import nn

from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report
from voxmith.training.losses import LossTerm

from .synthesizer_training import ADAM_OPTIONS, collate as synthesizer_collate
from .tacotron import Tacotron
from .training_data import PreparedLine
from .wavernn import WaveRNN

STAGE = "vocoder"
LOSSES = (LossTerm("ce", 1.0, "cross-entropy of each next sample's mu-law level", stage=STAGE),)


@dataclass(frozen=True)
class VocoderItem:
    mel: np.ndarray  # (bands, frames) float32 in [-1, 1]
    levels: np.ndarray  # int64 mu-law levels, frames * hop of them


def encode_mu_law(x: np.ndarray, levels: int) -> np.ndarray:
    """Mu-law levels 0..levels-1 of samples in [-1, 1] (official encode_mu_law, mu = levels - 1)."""
    mu = levels - 1
    fx = np.sign(x) * np.log(1 + mu * np.abs(x)) / np.log(1 + mu)
    return np.floor((fx + 1) / 2 * mu + 0.5)


def levels_to_float(levels: torch.Tensor, bits: int) -> torch.Tensor:
    return 2 * levels / (2 ** bits - 1.0) - 1.0


def vocoder_item(mel: np.ndarray, wav: np.ndarray, *, hop: int, bits: int, mel_max_abs: float,
                 preemphasis: float) -> VocoderItem:
    """One line as the official VocoderDataset gives it (mel scaled, waveform pre-emphasised,
    clipped, padded to a whole hop past its end, cut to the mel's frames, quantised)."""
    wav = np.clip(lfilter([1, -preemphasis], [1], np.asarray(wav, dtype=np.float64)), -1, 1)
    wav = np.pad(wav, (0, (len(wav) // hop + 1) * hop - len(wav)))
    frames = mel.shape[1]
    if len(wav) < frames * hop:
        raise VoxmithError(f"The waveform ({len(wav)} samples) is shorter than its mel ({frames} frames).")
    levels = encode_mu_law(wav[:frames * hop], 2 ** bits).astype(np.int64)
    return VocoderItem((np.asarray(mel, dtype=np.float32) / mel_max_abs).astype(np.float32), levels)


def window_count_ok(item: VocoderItem, seq_len: int, hop: int, pad: int) -> bool:
    """Whether the line is long enough for one training window (the official collate needs it)."""
    return item.mel.shape[1] - 2 - (seq_len // hop + 4 * pad) > 0


def random_offsets(items: Sequence[VocoderItem], seq_len: int, hop: int, pad: int,
                   rng: np.random.RandomState) -> List[int]:
    """Each window's first mel frame, drawn as the official collate draws it."""
    mel_win = seq_len // hop + 2 * pad
    return [int(rng.randint(0, item.mel.shape[1] - 2 - (mel_win + 2 * pad))) for item in items]


def windows(items: Sequence[VocoderItem], offsets: Sequence[int], seq_len: int, hop: int, pad: int,
            bits: int) -> dict:
    """The official collate_vocoder for given offsets: input samples x (as floats), target levels y,
    and the mel windows m (with `pad` frames of context each side)."""
    mel_win = seq_len // hop + 2 * pad
    mels = np.stack([item.mel[:, o:o + mel_win] for item, o in zip(items, offsets)]).astype(np.float32)
    labels = np.stack([item.levels[(o + pad) * hop:(o + pad) * hop + seq_len + 1]
                       for item, o in zip(items, offsets)]).astype(np.int64)
    labels = torch.from_numpy(labels)
    return {"x": levels_to_float(labels[:, :seq_len].float(), bits), "y": labels[:, 1:],
            "mels": torch.from_numpy(mels)}


class VocoderTrainer(nn.Module):
    """The WaveRNN as the loop trains it: forward(batch) -> {"vocoder.ce": cross-entropy}."""

    def __init__(self, vocoder: WaveRNN, carried_synthesizer: Optional[Tacotron] = None):
        super().__init__()
        self.vocoder = vocoder
        for name, param in vocoder.named_parameters():
            param.requires_grad_(name != "step")  # the step counter is a parameter without gradient
        if carried_synthesizer is not None:
            # The synthesizer whose aligned mels this vocoder learns from: not trained, only kept in
            # the checkpoints ("synthesizer.*") so that a voice speaks with the pair.
            self.synthesizer = carried_synthesizer.eval()
            for param in carried_synthesizer.parameters():
                param.requires_grad_(False)

    def forward(self, batch: dict) -> Dict[str, torch.Tensor]:
        device = self.vocoder.I.weight.device
        if self.training:
            with torch.no_grad():
                self.vocoder.step += 1  # as the official forward counts its passes
        logits = self.vocoder(batch["x"].to(device), batch["mels"].to(device))
        return {f"{STAGE}.ce": F.cross_entropy(logits.transpose(1, 2), batch["y"].to(device))}


class VocoderTrainingTask:
    """`voxmith.training.TrainingTask` of the vocoder stage (see the module docstring)."""

    losses = LOSSES

    def __init__(self, vocoder: WaveRNN, train_items: Sequence[VocoderItem], validation_items: Sequence[VocoderItem],
                 seq_len: int, batch_size: int, seed: int, all_losses: Sequence[LossTerm] = LOSSES,
                 carried_synthesizer: Optional[Tacotron] = None):
        c = vocoder.config
        if seq_len % c.hop_samples:
            raise VoxmithError(f"voc_seq_len ({seq_len}) must be a multiple of the vocoder's hop ({c.hop_samples}).")
        usable = [item for item in train_items if window_count_ok(item, seq_len, c.hop_samples, c.pad)]
        if not usable:
            raise VoxmithError(f"No dataset line is long enough for the vocoder's training windows "
                               f"({seq_len} samples plus context); add longer clips.")
        self.model = VocoderTrainer(vocoder, carried_synthesizer)
        self.losses = tuple(all_losses)
        self.items = usable
        self.validation = [item for item in validation_items if window_count_ok(item, seq_len, c.hop_samples, c.pad)]
        self.seq_len, self.batch_size, self.seed = int(seq_len), int(batch_size), int(seed)

    def _batch(self, items: Sequence[VocoderItem], rng: np.random.RandomState) -> dict:
        c = self.model.vocoder.config
        offsets = random_offsets(items, self.seq_len, c.hop_samples, c.pad, rng)
        return windows(items, offsets, self.seq_len, c.hop_samples, c.pad, c.bits)

    def batches(self, epoch: int) -> List[dict]:
        rng = np.random.RandomState((self.seed * 1_000_003 + epoch) % 2 ** 32)
        order = rng.permutation(len(self.items))
        return [self._batch([self.items[i] for i in order[s:s + self.batch_size]], rng)
                for s in range(0, len(order), self.batch_size)]

    optimizer_options = ADAM_OPTIONS

    def validation_loss(self) -> float:
        """Mean cross-entropy over one window of each validation line (the training lines when none
        is long enough), the windows fixed by the run's seed."""
        items = self.validation or self.items
        rng = np.random.RandomState(self.seed)
        total = 0.0
        for s in range(0, len(items), self.batch_size):
            chunk = items[s:s + self.batch_size]
            total += float(self.model(self._batch(chunk, rng))[f"{STAGE}.ce"]) * len(chunk)
        return total / len(items)


@torch.no_grad()
def gta_mels(synthesizer: Tacotron, lines: Sequence[PreparedLine], batch_size: int, pad_value: float,
             progress: Optional[ProgressCallback] = None) -> List[np.ndarray]:
    """Synthesizer-aligned mels (bands, frames) of `lines`, in order (see the module docstring)."""
    model = Tacotron(dataclasses.replace(synthesizer.config, dropout=0.0))  # official: dropout 0 for GTA
    model.load_state_dict(copy.deepcopy(synthesizer.state_dict()))
    model = model.to(next(synthesizer.parameters()).device).eval()
    device = model.encoder_proj.weight.device
    r = model.r
    out: List[np.ndarray] = []
    for start in range(0, len(lines), batch_size):
        report(progress, "sv2tts: synthesizer-aligned mels", start, len(lines))
        chunk = lines[start:start + batch_size]
        batch = synthesizer_collate(chunk, pad_value)
        mels = batch["mels"]
        extra = (-mels.shape[2]) % r
        if extra:
            mels = F.pad(mels, (0, extra), value=pad_value)
        result = model(batch["chars"].to(device), mels.to(device), batch["embeddings"].to(device))
        for i, line in enumerate(chunk):
            out.append(result.postnet_mels[i, :, :line.frames].cpu().numpy().astype(np.float32))
    report(progress, "sv2tts: synthesizer-aligned mels", len(lines), len(lines))
    return out


__all__ = ["LOSSES", "STAGE", "VocoderItem", "VocoderTrainer", "VocoderTrainingTask", "encode_mu_law", "gta_mels",
           "random_offsets", "vocoder_item", "windows"]
