"""The SV2TTS speaker encoder (GE2E, official `encoder/model.py` and `encoder/inference.py`).

A 3-layer LSTM reads 40-band mel frames; the last layer's final hidden state goes through a linear
layer and a ReLU and is L2-normalised. An utterance is embedded from overlapping 1.6 s windows
(`partial_slices`): their embeddings are averaged and the mean normalised again.
The checkpoint's `similarity_weight`/`similarity_bias` (the GE2E loss scale) are kept so the
official state dict loads strictly; inference does not use them.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from torch import nn

from .hparams import EncoderAudio, EncoderConfig
from .encoder_audio import mel_frames


class SpeakerEncoder(nn.Module):
    def __init__(self, config: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(config.mel_bands, config.hidden_size, config.num_layers, batch_first=True)
        self.linear = nn.Linear(config.hidden_size, config.embedding_size)
        self.relu = nn.ReLU()
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(batch, frames, mel_bands) -> (batch, embedding_size), each row of unit length."""
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / (torch.norm(raw, dim=1, keepdim=True) + 1e-5)


def partial_slices(n_samples: int, audio: EncoderAudio = EncoderAudio()) -> Tuple[List[slice], List[slice]]:
    """Where the windows of an utterance of `n_samples` lie: (sample slices, mel-frame slices).

    Windows of `partial_frames` frames start every `partial_frames * (1 - overlap)` frames; the
    last one may run past the end (the caller pads with zeros) and is dropped when it covers
    less than `min_pad_coverage` of real audio, unless it is the only one.
    """
    hop = audio.hop_samples
    width = audio.partial_frames
    n_frames = int(np.ceil((n_samples + 1) / hop))
    step = max(int(np.round(width * (1 - audio.partial_overlap))), 1)
    starts = range(0, max(1, n_frames - width + step + 1), step)
    mel_slices = [slice(i, i + width) for i in starts]
    wav_slices = [slice(i * hop, (i + width) * hop) for i in starts]
    last = wav_slices[-1]
    coverage = (n_samples - last.start) / (last.stop - last.start)
    if coverage < audio.min_pad_coverage and len(mel_slices) > 1:
        mel_slices, wav_slices = mel_slices[:-1], wav_slices[:-1]
    return wav_slices, mel_slices


def partial_mels(wav: np.ndarray, audio: EncoderAudio = EncoderAudio(), mel_bands: int = 40) -> np.ndarray:
    """(windows, partial_frames, mel_bands): the mel frames of each window of a preprocessed clip."""

    wav_slices, mel_slices = partial_slices(len(wav), audio)
    needed = wav_slices[-1].stop
    if needed >= len(wav):
        wav = np.pad(wav, (0, needed - len(wav)), "constant")
    frames = mel_frames(wav, audio, mel_bands)
    return np.stack([frames[s] for s in mel_slices])


def average_embedding(partials: np.ndarray) -> np.ndarray:
    """The utterance embedding: the mean of the window embeddings, normalised to unit length."""
    mean = np.mean(partials, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):  # an all-zero mean gives NaN: the caller checks
        return (mean / np.linalg.norm(mean, 2)).astype(np.float32)


@torch.no_grad()
def embed_partials(model: SpeakerEncoder, windows: np.ndarray, batch: int = 64) -> np.ndarray:
    """Window embeddings, `batch` windows per forward pass (bounded memory for long clips)."""
    device = next(model.parameters()).device
    out = [model(torch.from_numpy(windows[i:i + batch]).to(device)).cpu().numpy()
           for i in range(0, len(windows), batch)]
    return np.concatenate(out).astype(np.float32)


def embed_utterance(model: SpeakerEncoder, wav: np.ndarray, audio: EncoderAudio = EncoderAudio()) -> np.ndarray:
    """Embedding of one preprocessed 16 kHz clip (official `embed_utterance` with partials)."""
    windows = partial_mels(wav, audio, model.config.mel_bands)
    return average_embedding(embed_partials(model, windows))
