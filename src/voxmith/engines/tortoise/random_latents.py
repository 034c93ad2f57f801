"""RandomLatentConverter: maps Gaussian noise to a plausible conditioning latent ("random voice").

TorToiSe uses two of these when no voice clips or latents are given: 1024 channels for the
autoregressive model (`rlg_auto.pth`) and 2048 for the diffusion decoder (`rlg_diffuser.pth`).
Keys: `layers.{0..4}.weight/bias` (EqualLinear) and `layers.5.weight/bias` (nn.Linear).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class RandomLatentConfig:
    channels: int = 1024  # 1024 for rlg_auto, 2048 for rlg_diffuser
    equal_layers: int = 5
    lr_mul: float = 0.1

    @classmethod
    def auto(cls) -> "RandomLatentConfig":
        return cls(channels=1024)

    @classmethod
    def diffuser(cls) -> "RandomLatentConfig":
        return cls(channels=2048)

    @classmethod
    def tiny(cls) -> "RandomLatentConfig":
        return cls(channels=64)


class EqualLinear(nn.Module):
    """StyleGAN-style equalised-learning-rate linear layer followed by a scaled leaky ReLU.

    The stored weight is divided by `lr_mul` at init and multiplied back (with 1/sqrt(fan_in)) at run
    time, so checkpoints hold the "unscaled" values. Output: leaky_relu(x W'^T + b*lr_mul, 0.2) * sqrt(2).
    """

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0):
        super().__init__()
        # Same init draws as the official module, so building one consumes the torch RNG identically
        # (this matters for seeded reproduction: the official pipeline builds these lazily inside tts()).
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale)
        return F.leaky_relu(out + self.bias * self.lr_mul, negative_slope=0.2) * math.sqrt(2.0)


class RandomLatentConverter(nn.Module):
    """5 EqualLinear layers (lr_mul 0.1) and a plain Linear, applied to N(0, 1) noise."""

    def __init__(self, config: RandomLatentConfig | int = RandomLatentConfig()):
        super().__init__()
        if isinstance(config, int):
            config = RandomLatentConfig(channels=config)
        self.config = config
        self.channels = config.channels
        ch = config.channels
        self.layers = nn.Sequential(
            *[EqualLinear(ch, ch, lr_mul=config.lr_mul) for _ in range(config.equal_layers)],
            nn.Linear(ch, ch),
        )

    def convert(self, noise: torch.Tensor) -> torch.Tensor:
        """Deterministic part: (B, channels) noise -> (B, channels) latent."""
        return self.layers(noise)

    def forward(self, ref: torch.Tensor) -> torch.Tensor:
        """Draw `randn(ref.shape[0], channels)` from the torch RNG (like the official call with
        `tensor([0.])`, which gives one latent) and convert it."""
        noise = torch.randn(ref.shape[0], self.channels, device=ref.device)
        return self.convert(noise)


__all__ = ["RandomLatentConfig", "EqualLinear", "RandomLatentConverter"]
