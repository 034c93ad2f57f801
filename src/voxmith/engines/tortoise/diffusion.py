"""TorToiSe's diffusion decoder (DiffusionTts): predicts the noise (and a variance interpolation value)
of a 100-channel normalised mel at a diffusion timestep, conditioned on the autoregressive model's latents
and on a voice latent taken from reference mels.

Inference uses three entry points, as official api.py does:
* `get_conditioning(mels)` - voice latent (B, 2 * model_channels) from univnet mels of the reference clips;
* `timestep_independent(latents, voice_latent, out_len)` - the aligned conditioning, computed once per clip;
* `forward(x, timesteps, precomputed_aligned_embeddings=..., conditioning_free=...)` - one denoising step.
Module attribute names reproduce the official state_dict keys, so official checkpoints load strictly.
Training-only features (layer drop, unconditioned-batch dropout, code-prediction head, fp16 autocast)
are left out; `code_embedding`, `code_converter` and `mel_head` exist for their keys and the token path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import AttentionBlock, normalization


@dataclass(frozen=True)
class DiffusionConfig:
    model_channels: int = 1024
    num_layers: int = 10
    in_channels: int = 100
    out_channels: int = 200          # eps (100) + variance interpolation values (100)
    in_latent_channels: int = 1024   # must equal the autoregressive model's width
    in_tokens: int = 8193
    dropout: float = 0.0
    num_heads: int = 16

    @classmethod
    def tiny(cls) -> "DiffusionConfig":
        return cls(model_channels=64, num_layers=2, in_latent_channels=64, num_heads=4)


def timestep_embedding(timesteps: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding (N,) -> (N, dim): cosines first, then sines; zero-padded when dim is odd."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    angles = timesteps[:, None].float() * freqs.to(timesteps.device)[None]
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class ResBlock(nn.Module):
    """Time-conditioned residual block (official `efficient_config` with scale-shift norm).

    h = Conv1x1(SiLU(GN(x))); h = Conv3(Dropout(SiLU(GN(h) * (1 + scale) + shift))); out = x + h,
    where (scale, shift) = Linear(SiLU(emb)). The Sequential indices fix the checkpoint keys.
    """

    def __init__(self, channels: int, emb_channels: int, dropout: float):
        super().__init__()
        self.in_layers = nn.Sequential(normalization(channels), nn.SiLU(), nn.Conv1d(channels, channels, 1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * channels))
        self.out_layers = nn.Sequential(normalization(channels), nn.SiLU(), nn.Dropout(p=dropout),
                                        nn.Conv1d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x)
        scale, shift = torch.chunk(self.emb_layers(emb).type(h.dtype)[..., None], 2, dim=1)
        h = self.out_layers[0](h) * (1 + scale) + shift
        for layer in self.out_layers[1:]:
            h = layer(h)
        return x + h


class DiffusionLayer(nn.Module):
    """ResBlock followed by relative-position self-attention."""

    def __init__(self, channels: int, dropout: float, num_heads: int):
        super().__init__()
        self.resblk = ResBlock(channels, channels, dropout)
        self.attn = AttentionBlock(channels, num_heads, relative_pos_embeddings=True)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.resblk(x, emb))


def _attention_stack(channels: int, heads: int, count: int) -> list[AttentionBlock]:
    return [AttentionBlock(channels, heads, relative_pos_embeddings=True) for _ in range(count)]


class DiffusionTts(nn.Module):
    def __init__(self, config: DiffusionConfig | None = None):
        super().__init__()
        cfg = self.config = config or DiffusionConfig()
        ch, heads = cfg.model_channels, cfg.num_heads

        self.inp_block = nn.Conv1d(cfg.in_channels, ch, 3, 1, 1)
        self.time_embed = nn.Sequential(nn.Linear(ch, ch), nn.SiLU(), nn.Linear(ch, ch))
        # Token path (unused by TTS inference, which conditions on AR latents).
        self.code_embedding = nn.Embedding(cfg.in_tokens, ch)
        self.code_converter = nn.Sequential(*_attention_stack(ch, heads, 3))
        self.code_norm = normalization(ch)
        self.latent_conditioner = nn.Sequential(nn.Conv1d(cfg.in_latent_channels, ch, 3, padding=1),
                                                *_attention_stack(ch, heads, 4))
        # Voice encoder: two stride-2 convs (401 mel frames -> 101) then attention at twice the width.
        self.contextual_embedder = nn.Sequential(nn.Conv1d(cfg.in_channels, ch, 3, padding=1, stride=2),
                                                 nn.Conv1d(ch, 2 * ch, 3, padding=1, stride=2),
                                                 *_attention_stack(2 * ch, heads, 5))
        # Stands in for the aligned conditioning in the guidance (conditioning-free) branch.
        self.unconditioned_embedding = nn.Parameter(torch.randn(1, ch, 1))
        self.conditioning_timestep_integrator = nn.ModuleList(
            DiffusionLayer(ch, cfg.dropout, heads) for _ in range(3))
        self.integrating_conv = nn.Conv1d(2 * ch, ch, kernel_size=1)
        self.mel_head = nn.Conv1d(ch, cfg.in_channels, kernel_size=3, padding=1)  # training-time aux head
        self.layers = nn.ModuleList([DiffusionLayer(ch, cfg.dropout, heads) for _ in range(cfg.num_layers)]
                                    + [ResBlock(ch, ch, cfg.dropout) for _ in range(3)])
        self.out = nn.Sequential(normalization(ch), nn.SiLU(), nn.Conv1d(ch, cfg.out_channels, 3, padding=1))

    def get_conditioning(self, mels: torch.Tensor) -> torch.Tensor:
        """Voice latent from reference univnet mels (B, 100, S) or (B, n_clips, 100, S) -> (B, 2*ch).

        Each clip is encoded separately; the frames of all clips are pooled into one mean.
        """
        if mels.dim() == 3:
            mels = mels.unsqueeze(1)
        encoded = [self.contextual_embedder(mels[:, j]) for j in range(mels.shape[1])]
        return torch.cat(encoded, dim=-1).mean(dim=-1)

    def timestep_independent(self, aligned_conditioning: torch.Tensor, conditioning_latent: torch.Tensor,
                             expected_seq_len: int) -> torch.Tensor:
        """Aligned conditioning (B, ch, expected_seq_len) from AR latents (B, L, latent_ch) float,
        or from codes (B, L) long, modulated by the voice latent (scale, shift halves)."""
        if aligned_conditioning.dtype == torch.long:
            code_emb = self.code_converter(self.code_embedding(aligned_conditioning).permute(0, 2, 1))
        else:
            code_emb = self.latent_conditioner(aligned_conditioning.permute(0, 2, 1))
        scale, shift = torch.chunk(conditioning_latent, 2, dim=1)
        code_emb = self.code_norm(code_emb) * (1 + scale.unsqueeze(-1)) + shift.unsqueeze(-1)
        # Legacy 'nearest' (source index floor(dst * L / out_len)), as the model was trained with.
        return F.interpolate(code_emb, size=expected_seq_len, mode="nearest")

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, aligned_conditioning: torch.Tensor | None = None,
                conditioning_latent: torch.Tensor | None = None,
                precomputed_aligned_embeddings: torch.Tensor | None = None,
                conditioning_free: bool = False) -> torch.Tensor:
        """x (B, 100, T) noisy normalised mel, timesteps (B,) original step numbers -> (B, 200, T).

        Official adds `0 * sum(mean of unused parameters)` for distributed training; that is a no-op
        for finite weights and is left out.
        """
        if conditioning_free:
            code_emb = self.unconditioned_embedding.repeat(x.shape[0], 1, x.shape[-1])
        elif precomputed_aligned_embeddings is not None:
            code_emb = precomputed_aligned_embeddings
        elif aligned_conditioning is not None and conditioning_latent is not None:
            code_emb = self.timestep_independent(aligned_conditioning, conditioning_latent, x.shape[-1])
        else:
            raise ValueError("need precomputed_aligned_embeddings, or aligned_conditioning and conditioning_latent")

        time_emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels))
        for layer in self.conditioning_timestep_integrator:
            code_emb = layer(code_emb, time_emb)
        h = self.integrating_conv(torch.cat([self.inp_block(x), code_emb], dim=1))
        for layer in self.layers:
            h = layer(h, time_emb)
        return self.out(h.float())
