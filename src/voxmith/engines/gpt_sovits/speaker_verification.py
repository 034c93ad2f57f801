"""Speaker-verification embedding of GPT-SoVITS v2Pro / v2ProPlus: ERes2NetV2 (3D-Speaker) on Kaldi fbank.

    verifier = SpeakerVerifier.load(path_to_pretrained_eres2netv2w24s4ep4_ckpt, device="cpu")
    sv = verifier.embed(wav_16k)        # (samples,) or (batch, samples) -> (batch, 20480)

What the official code computes (`GPT_SoVITS/sv.py: SV.compute_embedding3`): 80-bin Kaldi log-mel
filterbank of the 16 kHz reference (25 ms Povey windows every 10 ms, pre-emphasis 0.97, DC removed per
frame, 512-point power spectrum, mel bins from 20 Hz to Nyquist, no dither, frames that do not fit are
dropped), then ERes2NetV2 (base width 24, scale 4, expansion 4) up to its fused last stage, flattened
over channels x frequency and averaged over time: 2048 channels x 10 bands = 20480 values. The
network's pooling and embedding layer (`seg_1`) exist in the checkpoint but are not used for this.
The reference is the 32 kHz reference after the peak rule (`spectrogram.reference_loudness`),
resampled to 16 kHz by the caller. For training data the official recipe (`prepare_datasets/2-get-sv.py`)
embeds the stored 32 kHz training clip (`spectrogram.training_audio`) resampled to 16 kHz. `kaldi_fbank` is written here in torch (torchaudio is not a
dependency); its golden test compares it with the official `eres2net/kaldi.py`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from voxmith.errors import VoxmithError

SAMPLE_RATE_HZ = 16000
FRAME_LENGTH = 400        # 25 ms at 16 kHz
FRAME_SHIFT = 160         # 10 ms
FFT_SIZE = 512            # frame length rounded up to a power of two
PREEMPHASIS = 0.97
LOW_FREQ_HZ = 20.0
EMBEDDING_DIM = 20480


def _mel(freq):
    return 1127.0 * torch.log(1.0 + freq / 700.0) if torch.is_tensor(freq) else 1127.0 * math.log(1.0 + freq / 700.0)


def kaldi_mel_banks(num_bins: int, fft_size: int = FFT_SIZE, sample_rate: float = SAMPLE_RATE_HZ,
                    low_freq: float = LOW_FREQ_HZ) -> torch.Tensor:
    """Triangular filters `(num_bins, fft_size // 2 + 1)` equally spaced on Kaldi's mel scale
    (1127 ln(1 + f/700)) between `low_freq` and Nyquist; the Nyquist bin gets no weight."""
    mel_low, mel_high = _mel(low_freq), _mel(sample_rate / 2)
    delta = (mel_high - mel_low) / (num_bins + 1)
    edges = mel_low + torch.arange(num_bins).unsqueeze(1) * delta
    left, center, right = edges, edges + delta, edges + 2 * delta
    mel = _mel((sample_rate / fft_size) * torch.arange(fft_size // 2, dtype=torch.float32)).unsqueeze(0)
    banks = torch.clamp(torch.minimum((mel - left) / (center - left), (right - mel) / (right - center)), min=0)
    return F.pad(banks.float(), (0, 1))


def kaldi_fbank(wave: torch.Tensor, num_mel_bins: int = 80) -> torch.Tensor:
    """Kaldi `compute-fbank-feats` defaults at 16 kHz without dither: `(samples,)` -> `(frames, num_mel_bins)`."""
    if wave.dim() != 1:
        raise ValueError(f"kaldi_fbank takes one waveform (samples,), got {tuple(wave.shape)}")
    if wave.shape[0] < FRAME_LENGTH:
        raise ValueError(f"audio of {wave.shape[0]} samples is shorter than one 25 ms frame")
    frames = wave.unfold(0, FRAME_LENGTH, FRAME_SHIFT)
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)   # the first sample repeats itself
    frames = frames - PREEMPHASIS * previous
    povey = torch.hann_window(FRAME_LENGTH, periodic=False, dtype=wave.dtype, device=wave.device).pow(0.85)
    frames = F.pad(frames * povey, (0, FFT_SIZE - FRAME_LENGTH))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = kaldi_mel_banks(num_mel_bins).to(device=wave.device, dtype=wave.dtype)
    energies = power @ banks.T
    return torch.clamp(energies, min=torch.finfo(wave.dtype).eps).log()


class ClippedReLU(nn.Hardtanh):
    """ReLU capped at 20 (the 3D-Speaker networks' activation)."""

    def __init__(self):
        super().__init__(0.0, 20.0)


class AttentionalFusion(nn.Module):
    """AFF: a learned per-position mix of two feature maps (`local_att` key layout kept)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        inner = channels // reduction
        self.local_att = nn.Sequential(nn.Conv2d(channels * 2, inner, 1), nn.BatchNorm2d(inner), nn.SiLU(),
                                       nn.Conv2d(inner, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        weight = 1.0 + torch.tanh(self.local_att(torch.cat([x, other], dim=1)))
        return x * weight + other * (2.0 - weight)


class ERes2NetBlock(nn.Module):
    """Res2Net-style bottleneck: the channels split into `scale` groups, each group's 3x3 conv sees the
    previous group's output added (or, with `fuse`, attentionally fused) to its own input."""

    def __init__(self, in_planes: int, planes: int, stride: int, base_width: int, scale: int, expansion: int,
                 fuse: bool):
        super().__init__()
        width = int(math.floor(planes * (base_width / 64.0)))
        self.width = width
        self.conv1 = nn.Conv2d(in_planes, width * scale, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(scale))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale))
        if fuse:
            self.fuse_models = nn.ModuleList(AttentionalFusion(width) for _ in range(scale - 1))
        self.fuse = fuse
        self.conv3 = nn.Conv2d(width * scale, planes * expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * expansion)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * expansion:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes * expansion, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes * expansion))
        self.relu = ClippedReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.split(self.relu(self.bn1(self.conv1(x))), self.width, dim=1)
        outs = []
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            if i == 0:
                h = groups[0]
            elif self.fuse:
                h = self.fuse_models[i - 1](h, groups[i])
            else:
                h = h + groups[i]
            h = self.relu(bn(conv(h)))
            outs.append(h)
        out = self.bn3(self.conv3(torch.cat(outs, dim=1)))
        return self.relu(out + self.shortcut(x))


@dataclass(frozen=True)
class ERes2NetV2Config:
    num_blocks: Sequence[int] = (3, 4, 6, 3)
    m_channels: int = 64
    feat_dim: int = 80
    embedding_size: int = 192
    base_width: int = 24
    scale: int = 4
    expansion: int = 4

    @property
    def pooled_dim(self) -> int:
        """Width of the time-averaged last stage: channels x frequency bands (20480 at full size)."""
        return self.m_channels * 8 * self.expansion * (self.feat_dim // 8)


class ERes2NetV2(nn.Module):
    """ERes2NetV2 trunk with the official key names; `pooled` is what GPT-SoVITS feeds the SoVITS model."""

    def __init__(self, config: ERes2NetV2Config = ERes2NetV2Config()):
        super().__init__()
        cfg = self.config = config
        m = cfg.m_channels
        self.conv1 = nn.Conv2d(1, m, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m)
        self._in_planes = m
        self.layer1 = self._stage(m, cfg.num_blocks[0], 1, fuse=False)
        self.layer2 = self._stage(m * 2, cfg.num_blocks[1], 2, fuse=False)
        self.layer3 = self._stage(m * 4, cfg.num_blocks[2], 2, fuse=True)
        self.layer4 = self._stage(m * 8, cfg.num_blocks[3], 2, fuse=True)
        self.layer3_ds = nn.Conv2d(m * 4 * cfg.expansion, m * 8 * cfg.expansion, 3, padding=1, stride=2, bias=False)
        self.fuse34 = AttentionalFusion(m * 8 * cfg.expansion)
        # statistics-pooling embedding: in the checkpoint, unused by GPT-SoVITS
        stats_dim = (cfg.feat_dim // 8) * m * 8
        self.seg_1 = nn.Linear(stats_dim * cfg.expansion * 2, cfg.embedding_size)

    def _stage(self, planes: int, blocks: int, stride: int, fuse: bool) -> nn.Sequential:
        cfg = self.config
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(ERes2NetBlock(self._in_planes, planes, s, cfg.base_width, cfg.scale, cfg.expansion, fuse))
            self._in_planes = planes * cfg.expansion
        return nn.Sequential(*layers)

    def pooled(self, fbank: torch.Tensor) -> torch.Tensor:
        """`(batch, frames, 80)` fbank -> `(batch, pooled_dim)`: last fused stage, mean over time."""
        x = fbank.transpose(1, 2).unsqueeze(1)                   # (batch, 1, freq, time)
        out = F.relu(self.bn1(self.conv1(x)))
        out3 = self.layer3(self.layer2(self.layer1(out)))
        fused = self.fuse34(self.layer4(out3), self.layer3_ds(out3))
        return fused.flatten(start_dim=1, end_dim=2).mean(-1)


class SpeakerVerifier:
    """The loaded ERes2NetV2 with GPT-SoVITS' feature path."""

    def __init__(self, model: ERes2NetV2):
        self.model = model.eval()

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> "SpeakerVerifier":
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # damaged or foreign file: torch raises many types
            raise VoxmithError(f"Cannot read the speaker-verification model {path} ({type(err).__name__}). "
                               "Download it again (voxmith models download gpt-sovits --version v2ProPlus).") from err
        with torch.device("meta"):
            model = ERes2NetV2()
        missing, _ = model.load_state_dict(state, strict=False, assign=True)
        if missing:
            raise VoxmithError(f"{path} is not the ERes2NetV2 speaker-verification model "
                               f"({len(missing)} weights missing, e.g. {missing[:2]}).")
        return cls(model.to(device=device, dtype=dtype))

    @torch.no_grad()
    def embed(self, wav_16k: torch.Tensor) -> torch.Tensor:
        """`(samples,)` or `(batch, samples)` of equal length at 16 kHz -> `(batch, 20480)`."""
        if wav_16k.dim() == 1:
            wav_16k = wav_16k.unsqueeze(0)
        param = next(self.model.parameters())
        feats = torch.stack([kaldi_fbank(w.to(param.device, torch.float32)) for w in wav_16k])
        return self.model.pooled(feats.to(param.dtype))
