"""Building blocks shared by the TorToiSe models: group normalisation and the 1-D self-attention block.

`AttentionBlock` is used by the autoregressive model's conditioning encoder, the diffusion decoder
(with relative position bias) and CVVP. Attribute names reproduce the official state_dict keys:
`norm.*`, `qkv.*`, `proj_out.*` and `relative_pos_embeddings.relative_attention_bias.weight`.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


class GroupNorm32(nn.GroupNorm):
    """GroupNorm that always computes in float32 (stable under half precision), then casts back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def group_count(channels: int) -> int:
    """Number of groups for `channels`: 32 (16 up to 64 channels, 8 up to 16), halved until it divides."""
    groups = 8 if channels <= 16 else 16 if channels <= 64 else 32
    while channels % groups:
        groups //= 2
    if groups <= 2:
        raise ValueError(f"{channels} channels give only {groups} normalisation groups; need more than 2")
    return groups


def normalization(channels: int) -> GroupNorm32:
    """The standard normalisation layer of these models (eps 1e-5, float32 compute)."""
    return GroupNorm32(group_count(channels), channels, eps=1e-5)


class RelativePositionBias(nn.Module):
    """T5-style learned bias over bucketed relative distances, added to the attention logits.

    Non-causal: half of the buckets cover keys before the query, half keys after. Within each half,
    distances below half the buckets are exact and the rest are log-spaced up to `max_distance`.
    The looked-up bias is multiplied by `scale` before it is added.
    """

    def __init__(self, scale: float, heads: int, num_buckets: int = 32, max_distance: int = 64):
        super().__init__()
        self.scale = scale
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)

    def buckets(self, q_len: int, k_len: int, device: torch.device) -> torch.Tensor:
        query = torch.arange(q_len, dtype=torch.long, device=device)[:, None]
        key = torch.arange(k_len, dtype=torch.long, device=device)[None, :]
        distance = query - key  # positive when the key lies before the query
        half = self.num_buckets // 2
        bucket = (distance < 0).long() * half
        distance = distance.abs()
        exact = half // 2
        # clamp avoids log(0); those entries take the exact branch anyway
        far = exact + (
            torch.log(distance.clamp(min=1).float() / exact) / math.log(self.max_distance / exact) * (half - exact)
        ).long()
        far = far.clamp(max=half - 1)
        return bucket + torch.where(distance < exact, distance, far)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """logits: (B, H, Tq, Tk) -> logits + scaled bias."""
        bias = self.relative_attention_bias(self.buckets(logits.shape[-2], logits.shape[-1], logits.device))
        return logits + bias.permute(2, 0, 1).unsqueeze(0) * self.scale


class AttentionBlock(nn.Module):
    """Residual multi-head self-attention over the time axis of a (B, C, T) tensor.

    `x + proj_out(attention(qkv(norm(x))))`, with `qkv` and `proj_out` as 1x1 convolutions.
    The qkv channels use the legacy per-head layout `[head0: q k v][head1: q k v]...`, and q and k are
    each scaled by `head_dim ** -0.25` (more stable in half precision than scaling the product).
    An optional `mask` (B, T) multiplies the attention weights *after* the softmax, like the official code.
    `do_checkpoint` is accepted for signature compatibility; gradient checkpointing is a training concern.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        do_checkpoint: bool = True,
        relative_pos_embeddings: bool = False,
    ):
        super().__init__()
        self.channels = channels
        self.do_checkpoint = do_checkpoint
        if num_head_channels == -1:
            self.num_heads = num_heads
        else:
            if channels % num_head_channels:
                raise ValueError(f"{channels} channels are not divisible by head width {num_head_channels}")
            self.num_heads = channels // num_head_channels
        self.norm = normalization(channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)
        if relative_pos_embeddings:
            # The official block sizes the bias table with the `num_heads` argument (not the derived count).
            self.relative_pos_embeddings = RelativePositionBias(
                scale=(channels // self.num_heads) ** 0.5, heads=num_heads, num_buckets=32, max_distance=64)
        else:
            self.relative_pos_embeddings = None

    def attend(self, qkv: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, width, length = qkv.shape
        heads = self.num_heads
        head_dim = width // (3 * heads)
        q, k, v = qkv.reshape(batch * heads, 3 * head_dim, length).split(head_dim, dim=1)
        scale = 1 / math.sqrt(math.sqrt(head_dim))
        logits = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        if self.relative_pos_embeddings is not None:
            logits = self.relative_pos_embeddings(logits.reshape(batch, heads, length, length))
            logits = logits.reshape(batch * heads, length, length)
        weights = torch.softmax(logits.float(), dim=-1).to(logits.dtype)
        if mask is not None:
            weights = weights * mask.repeat(heads, 1).unsqueeze(1)
        return torch.einsum("bts,bcs->bct", weights, v).reshape(batch, -1, length)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, channels, *spatial = x.shape
        x = x.reshape(batch, channels, -1)
        h = self.proj_out(self.attend(self.qkv(self.norm(x)), mask))
        return (x + h).reshape(batch, channels, *spatial)


__all__ = ["GroupNorm32", "normalization", "group_count", "RelativePositionBias", "AttentionBlock"]
