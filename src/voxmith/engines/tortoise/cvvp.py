"""CVVP: the contrastive voice-clip/speech-code model TorToiSe can blend into candidate ranking.

A conditioning mel (the autoregressive model's 80-channel conditioning mel of one voice clip, already
divided by the mel norms) and a row of speech codes are each encoded to one vector, projected,
L2-normalised and compared: score = dot product times ``exp(temperature)``.

Each side is a "collapsing" encoder: x-transformer encoder over time, then 1x1 conv, an
``AttentionBlock`` and another 1x1 conv over channels, then the plain mean over every time step
(the official eval path masks nothing, so padding codes count).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AttentionBlock
from .xtransformer import XTransformerEncoder


@dataclass(frozen=True)
class CVVPConfig:
    """Defaults are the sizes TorToiSe's api.py builds CVVP with (checkpoint ``cvvp.pth``)."""

    model_dim: int = 512
    transformer_heads: int = 8
    dropout: float = 0.0
    mel_channels: int = 80
    mel_codes: int = 8192
    conditioning_enc_depth: int = 8
    speech_enc_depth: int = 8
    latent_multiplier: int = 1

    @classmethod
    def tiny(cls) -> "CVVPConfig":
        """The small random-weight configuration used by the golden tests."""
        return cls(model_dim=64, transformer_heads=2, conditioning_enc_depth=2, speech_enc_depth=2)

    @property
    def latent_dim(self) -> int:
        return self.latent_multiplier * self.model_dim


class CollapsingTransformer(nn.Module):
    """(batch, time, model_dim) -> (batch, output_dims): encode, mix channels with attention, average."""

    def __init__(self, model_dim: int, output_dims: int, heads: int, dropout: float, depth: int):
        super().__init__()
        self.transformer = XTransformerEncoder(model_dim, depth, heads, ff_mult=1, ff_dropout=dropout,
                                               attn_dropout=dropout)
        self.pre_combiner = nn.Sequential(
            nn.Conv1d(model_dim, output_dims, 1),
            AttentionBlock(output_dims, num_heads=heads, do_checkpoint=False),
            nn.Conv1d(output_dims, output_dims, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.transformer(x)
        h = self.pre_combiner(h.transpose(1, 2))  # conv layers want (batch, channels, time)
        return h.mean(dim=-1)


class ConvFormatEmbedding(nn.Module):
    """Code embedding returned channels-first; exists for the ``speech_emb.emb.`` key segment."""

    def __init__(self, num_embeddings: int, dim: int):
        super().__init__()
        self.emb = nn.Embedding(num_embeddings, dim)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.emb(codes).transpose(1, 2)


class CVVP(nn.Module):
    """Scores how well speech codes match a voice clip. Loads the official ``cvvp.pth`` state_dict strictly."""

    def __init__(self, config: CVVPConfig | None = None):
        super().__init__()
        cfg = config or CVVPConfig()
        self.config = cfg
        dim, latent = cfg.model_dim, cfg.latent_dim
        self.temperature = nn.Parameter(torch.tensor(1.0))
        # Two stride-2 convs: the conditioning mel is shortened 4x before the transformer.
        self.cond_emb = nn.Sequential(
            nn.Conv1d(cfg.mel_channels, dim // 2, kernel_size=5, stride=2, padding=2),
            nn.Conv1d(dim // 2, dim, kernel_size=3, stride=2, padding=1),
        )
        self.conditioning_transformer = CollapsingTransformer(dim, dim, cfg.transformer_heads, cfg.dropout,
                                                              cfg.conditioning_enc_depth)
        self.to_conditioning_latent = nn.Linear(latent, latent, bias=False)
        self.speech_emb = ConvFormatEmbedding(cfg.mel_codes, dim)
        self.speech_transformer = CollapsingTransformer(dim, latent, cfg.transformer_heads, cfg.dropout,
                                                        cfg.speech_enc_depth)
        self.to_speech_latent = nn.Linear(latent, latent, bias=False)

    def conditioning_latent(self, mel_cond: torch.Tensor) -> torch.Tensor:
        """(batch, mel_channels, frames) normalised mel -> (batch, latent_dim) unit-norm latents."""
        emb = self.cond_emb(mel_cond).transpose(1, 2)
        return F.normalize(self.to_conditioning_latent(self.conditioning_transformer(emb)), p=2, dim=-1)

    def speech_latent(self, speech_codes: torch.Tensor) -> torch.Tensor:
        """(batch, n_codes) codes in [0, mel_codes) -> (batch, latent_dim) unit-norm latents."""
        emb = self.speech_emb(speech_codes).transpose(1, 2)
        return F.normalize(self.to_speech_latent(self.speech_transformer(emb)), p=2, dim=-1)

    def similarity(self, mel_cond: torch.Tensor, speech_codes: torch.Tensor) -> torch.Tensor:
        """Row-wise scores (batch,): conditioning mel row i against code row i."""
        cond = self.conditioning_latent(mel_cond)
        speech = self.speech_latent(speech_codes)
        return (cond * speech).sum(dim=-1) * self.temperature.exp()

    def forward(self, mel_cond: torch.Tensor, speech_codes: torch.Tensor) -> torch.Tensor:
        return self.similarity(mel_cond, speech_codes)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())
