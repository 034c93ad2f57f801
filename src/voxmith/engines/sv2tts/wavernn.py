"""The SV2TTS vocoder: fatchord's WaveRNN in RAW mode (official `vocoder/models/fatchord_version.py`),
module names as in the official state dict.

A residual network and a nearest-stretch + smoothing upsampler turn mel frames into per-sample
conditioning; two GRUs and three linear layers give a softmax over 2**bits mu-law levels for each
sample, which is drawn and fed back. Batched generation (`generate`) cuts the upsampled
conditioning into folds with an overlap, generates all folds at once and crossfades them back
together (equal power), then decodes mu-law and undoes the pre-emphasis.

Samples are drawn from the `torch.Generator` passed in (never torch's global RNG) with the same
call the official code makes through `torch.distributions.Categorical`, so the same seed gives
the same samples as the official code with that global seed.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import lfilter
from torch import nn

from .hparams import WaveRNNConfig


class ResBlock(nn.Module):
    def __init__(self, dims: int):
        super().__init__()
        self.conv1 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.conv2 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.batch_norm1 = nn.BatchNorm1d(dims)
        self.batch_norm2 = nn.BatchNorm1d(dims)

    def forward(self, x):
        y = F.relu(self.batch_norm1(self.conv1(x)))
        return self.batch_norm2(self.conv2(y)) + x


class MelResNet(nn.Module):
    def __init__(self, c: WaveRNNConfig):
        super().__init__()
        self.conv_in = nn.Conv1d(c.feat_dims, c.compute_dims, kernel_size=2 * c.pad + 1, bias=False)
        self.batch_norm = nn.BatchNorm1d(c.compute_dims)
        self.layers = nn.ModuleList([ResBlock(c.compute_dims) for _ in range(c.res_blocks)])
        self.conv_out = nn.Conv1d(c.compute_dims, c.res_out_dims, kernel_size=1)

    def forward(self, x):
        x = F.relu(self.batch_norm(self.conv_in(x)))
        for layer in self.layers:
            x = layer(x)
        return self.conv_out(x)


def stretch(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Repeat every time step `scale` times along the last axis of (batch, channels, h, time)."""
    return torch.repeat_interleave(x, scale, dim=-1)


class UpsampleNetwork(nn.Module):
    def __init__(self, c: WaveRNNConfig):
        super().__init__()
        self.scales = tuple(c.upsample_factors)
        self.total_scale = int(np.prod(self.scales))
        self.indent = c.pad * self.total_scale  # the padding frames' samples, cut after upsampling
        self.resnet = MelResNet(c)
        # Index i holds a stretch (no weights) and i+1 its smoothing conv, as in the official list.
        self.up_layers = nn.ModuleList()
        for scale in self.scales:
            self.up_layers.append(nn.Identity())
            self.up_layers.append(nn.Conv2d(1, 1, kernel_size=(1, 2 * scale + 1), padding=(0, scale), bias=False))

    def forward(self, mels):
        """(batch, feat, frames) -> conditioning (batch, samples, feat) and aux (batch, samples, res_out)."""
        aux = stretch(self.resnet(mels).unsqueeze(1), self.total_scale).squeeze(1)
        m = mels.unsqueeze(1)
        for scale, conv in zip(self.scales, self.up_layers[1::2]):
            m = conv(stretch(m, scale))
        m = m.squeeze(1)[:, :, self.indent:-self.indent]
        return m.transpose(1, 2), aux.transpose(1, 2)


def decode_mu_law(y: np.ndarray, levels: int) -> np.ndarray:
    """Inverse mu-law of values in [-1, 1] (mu = levels - 1)."""
    mu = levels - 1
    return np.sign(y) / mu * ((1 + mu) ** np.abs(y) - 1)


def de_emphasis(x: np.ndarray, coefficient: float) -> np.ndarray:
    return lfilter([1], [1, -coefficient], x)


def fold_with_overlap(x: torch.Tensor, target: int, overlap: int) -> torch.Tensor:
    """(1, time, feat) -> (folds, target + 2*overlap, feat): consecutive folds share `overlap`
    steps; the end is zero-padded to fill the last fold (at least one fold, however short)."""
    _, total, _ = x.size()
    folds = max(1, -(-(total - overlap) // (target + overlap)))  # ceil, as the official count + 1
    x = F.pad(x, (0, 0, 0, max(0, folds * (target + overlap) + overlap - total)))
    return torch.stack([x[0, i * (target + overlap): i * (target + overlap) + target + 2 * overlap]
                        for i in range(folds)])


def xfade_and_unfold(y: np.ndarray, overlap: int) -> np.ndarray:
    """Join folds (folds, target + 2*overlap): each fold's overlap starts with silence (the RNN's
    warm-up) then fades in, its tail fades out, with equal-power fades; overlaps are summed."""
    folds, length = y.shape
    target = length - 2 * overlap
    silence = overlap // 2
    t = np.linspace(-1, 1, overlap - silence, dtype=np.float64)
    fade_in = np.concatenate([np.zeros(silence), np.sqrt(0.5 * (1 + t))])
    fade_out = np.concatenate([np.sqrt(0.5 * (1 - t)), np.zeros(silence)])
    y = y.copy()
    y[:, :overlap] *= fade_in
    y[:, -overlap:] *= fade_out
    out = np.zeros(folds * (target + overlap) + overlap, dtype=np.float64)
    for i in range(folds):
        start = i * (target + overlap)
        out[start:start + length] += y[i]
    return out


class WaveRNN(nn.Module):
    def __init__(self, config: WaveRNNConfig = WaveRNNConfig()):
        super().__init__()
        c = self.config = config
        self.aux_dims = c.res_out_dims // 4
        self.upsample = UpsampleNetwork(c)
        self.I = nn.Linear(c.feat_dims + self.aux_dims + 1, c.rnn_dims)
        self.rnn1 = nn.GRU(c.rnn_dims, c.rnn_dims, batch_first=True)
        self.rnn2 = nn.GRU(c.rnn_dims + self.aux_dims, c.rnn_dims, batch_first=True)
        self.fc1 = nn.Linear(c.rnn_dims + self.aux_dims, c.fc_dims)
        self.fc2 = nn.Linear(c.fc_dims + self.aux_dims, c.fc_dims)
        self.fc3 = nn.Linear(c.fc_dims, c.n_classes)
        self.step = nn.Parameter(torch.zeros(1).long(), requires_grad=False)  # training steps, as saved

    def _aux_split(self, aux):
        d = self.aux_dims
        return [aux[..., d * i:d * (i + 1)] for i in range(4)]

    def forward(self, x: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (batch, samples, classes) from the previous samples `x` (batch,
        samples) in [-1, 1] and the mels (batch, feat, frames + 2*pad)."""
        mels, aux = self.upsample(mels)
        a1, a2, a3, a4 = self._aux_split(aux)
        h = self.I(torch.cat([x.unsqueeze(-1), mels, a1], dim=2))
        h = self.rnn1(h)[0] + h
        h = self.rnn2(torch.cat([h, a2], dim=2))[0] + h
        h = F.relu(self.fc1(torch.cat([h, a3], dim=2)))
        h = F.relu(self.fc2(torch.cat([h, a4], dim=2)))
        return self.fc3(h)

    def _cell(self, gru: nn.GRU) -> Callable:
        """One step of a single-layer GRU with its own weights (no copy)."""
        weights = (gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)
        return lambda x, h: torch.gru_cell(x, h, *weights)

    @torch.no_grad()
    def generate(self, mels: torch.Tensor, generator: Optional[torch.Generator] = None, batched: bool = True,
                 target: Optional[int] = None, overlap: Optional[int] = None,
                 progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
        """Waveform (float64) of mels (1, feat, frames) scaled to [-1, 1]; `target`/`overlap`: the
        fold sizes in samples (default: the config's)."""
        c = self.config
        target = target or c.target_samples
        overlap = overlap or c.overlap_samples
        device = next(self.parameters()).device
        mels = mels.to(device)
        wave_len = (mels.size(-1) - 1) * c.hop_samples
        mels = F.pad(mels, (c.pad, c.pad))
        cond, aux = self.upsample(mels)
        if batched:
            cond = fold_with_overlap(cond, target, overlap)
            aux = fold_with_overlap(aux, target, overlap)
        batch, length, _ = cond.size()
        rnn1, rnn2 = self._cell(self.rnn1), self._cell(self.rnn2)
        h1 = torch.zeros(batch, c.rnn_dims, device=device)
        h2 = torch.zeros(batch, c.rnn_dims, device=device)
        x = torch.zeros(batch, 1, device=device)
        a1, a2, a3, a4 = self._aux_split(aux)
        out = []
        for i in range(length):
            h = self.I(torch.cat([x, cond[:, i], a1[:, i]], dim=1))
            h1 = rnn1(h, h1)
            h = h + h1
            h2 = rnn2(torch.cat([h, a2[:, i]], dim=1), h2)
            h = h + h2
            h = F.relu(self.fc1(torch.cat([h, a3[:, i]], dim=1)))
            h = F.relu(self.fc2(torch.cat([h, a4[:, i]], dim=1)))
            posterior = F.softmax(self.fc3(h), dim=1)
            # What Categorical(posterior).sample() computes, drawn from our generator.
            probs = posterior / posterior.sum(-1, keepdim=True)
            level = torch.multinomial(probs, 1, True, generator=generator)
            sample = 2 * level.float() / (c.n_classes - 1.0) - 1.0
            out.append(sample.view(-1))
            x = sample
            if progress is not None and i % 100 == 0:
                progress(i, length)
        wav = torch.stack(out).transpose(0, 1).cpu().numpy().astype(np.float64)
        wav = xfade_and_unfold(wav, overlap) if batched else wav[0]
        return finish_waveform(wav, wave_len, c)


def finish_waveform(wav: np.ndarray, wave_len: int, c: WaveRNNConfig) -> np.ndarray:
    """Mu-law decode, undo pre-emphasis, cut to the mels' length and fade out the last 20 frames
    (so the sound does not stop abruptly)."""
    wav = de_emphasis(decode_mu_law(wav, c.n_classes), c.preemphasis)[:wave_len]
    fade = np.linspace(1, 0, 20 * c.hop_samples)
    tail = min(len(fade), len(wav))  # a waveform shorter than the fade gets the fade's end
    if tail:
        wav[len(wav) - tail:] *= fade[len(fade) - tail:]
    return wav

