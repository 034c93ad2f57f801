"""The discrete VAE that turned speech into the autoregressive model's mel codes (TorToiSe's `dvae.pth`).

TorToiSe's autoregressive model was trained to predict these codes, so fine-tuning it needs the same
tokeniser: a 1-D conv encoder over the normalised 80-band log mel (`audio.ar_conditioning_mel`, the
one DLAS / ai-voice-cloning feed it), 4x down in time (one code per 1024 samples at 22.05 kHz), then
the nearest of 8192 codebook vectors. Only `get_codebook_indices` is needed for training; the decoder
is built too so the released file loads with `strict=True` (every key has a home, none is dropped),
and `decode` exists for round-trip checks.

Module and buffer names follow DLAS's `lucidrains_dvae.DiscreteVAE` (with its EMA `Quantize`), the
architecture the file was saved from: `encoder.{i}`, `decoder.{i}`, `codebook.embed / cluster_size /
embed_avg`. The last two are EMA statistics for training the VAE itself; they are loaded and unused.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class DiscreteVAEConfig:
    """Constructor arguments; defaults are the released `dvae.pth` (DLAS's 22 kHz level config)."""

    channels: int = 80  # mel bands in and out
    codebook_dim: int = 512
    hidden_dim: int = 512  # first encoder width; doubled per down-sampling layer
    kernel_size: int = 3
    num_layers: int = 2  # stride-2 layers: codes are 2**num_layers mel frames apart
    num_resnet_blocks: int = 3
    num_tokens: int = 8192
    stride: int = 2

    @classmethod
    def tiny(cls) -> "DiscreteVAEConfig":
        return cls(codebook_dim=16, hidden_dim=8, num_tokens=64, num_resnet_blocks=1)

    @property
    def frames_per_code(self) -> int:
        return self.stride ** self.num_layers


class ResBlock(nn.Module):
    """conv3-ReLU-conv3-ReLU-conv1 plus the input (`net.{0,2,4}` in the checkpoint)."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv1d(channels, channels, 3, padding=1), nn.ReLU(),
                                 nn.Conv1d(channels, channels, 3, padding=1), nn.ReLU(),
                                 nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x) + x


class UpsampledConv(nn.Module):
    """Nearest-neighbour up-sampling then a conv (the released model does not use transposed convs)."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, stride: int, padding: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(n_in, n_out, kernel_size, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.stride, mode="nearest"))


class Codebook(nn.Module):
    """Nearest-vector quantiser. `embed` is (dim, tokens), as saved by DLAS's EMA quantiser."""

    def __init__(self, dim: int, tokens: int):
        super().__init__()
        embed = torch.randn(dim, tokens)
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.zeros(tokens))  # EMA training statistics,
        self.register_buffer("embed_avg", embed.clone())  # kept only so the file loads strictly

    def indices(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (...) index of the nearest codebook vector. The squared distance is formed
        term by term in the reference order so ties and rounding pick the same code."""
        flat = x.reshape(-1, x.shape[-1])
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embed + self.embed.pow(2).sum(0, keepdim=True)
        return (-dist).max(1)[1].view(*x.shape[:-1])

    def vectors(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.embed.transpose(0, 1))


class DiscreteVAE(nn.Module):
    def __init__(self, config: DiscreteVAEConfig = DiscreteVAEConfig()):
        super().__init__()
        c = self.config = config
        if c.num_layers < 1 or c.num_resnet_blocks < 1:
            # The 1x1 conv between codebook and decoder res blocks exists only with res blocks.
            raise ValueError("DiscreteVAE needs at least one down-sampling layer and one res block")
        widths = [c.hidden_dim * 2 ** i for i in range(c.num_layers)]
        inner = widths[-1]
        pad = (c.kernel_size - 1) // 2

        encoder: list[nn.Module] = []
        for n_in, n_out in zip([c.channels] + widths[:-1], widths):
            encoder.append(nn.Sequential(nn.Conv1d(n_in, n_out, c.kernel_size, stride=c.stride, padding=pad),
                                         nn.ReLU()))
        encoder += [ResBlock(inner) for _ in range(c.num_resnet_blocks)]
        encoder.append(nn.Conv1d(inner, c.codebook_dim, 1))
        self.encoder = nn.Sequential(*encoder)

        # Mirror image: 1x1 in from the codebook, res blocks, up-sampling layers, 1x1 out to mels.
        up_widths = list(reversed(widths))
        decoder: list[nn.Module] = [nn.Conv1d(c.codebook_dim, inner, 1)]
        decoder += [ResBlock(inner) for _ in range(c.num_resnet_blocks)]
        for n_in, n_out in zip([inner] + up_widths[:-1], up_widths):
            decoder.append(nn.Sequential(UpsampledConv(n_in, n_out, c.kernel_size, c.stride, pad), nn.ReLU()))
        decoder.append(nn.Conv1d(up_widths[-1], c.channels, 1))
        self.decoder = nn.Sequential(*decoder)

        self.codebook = Codebook(c.codebook_dim, c.num_tokens)

    @torch.no_grad()
    def get_codebook_indices(self, mel: torch.Tensor) -> torch.Tensor:
        """Normalised log mel (B, 80, frames) -> codes (B, ceil(frames / 4))."""
        return self.codebook.indices(self.encoder(mel).permute(0, 2, 1))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, n) -> reconstructed mel (B, 80, 4n)."""
        return self.decoder(self.codebook.vectors(codes).permute(0, 2, 1))


__all__ = ["DiscreteVAE", "DiscreteVAEConfig"]
