"""The small slice of an x-transformers style encoder that TorToiSe's CLVP and CVVP rank with.

Each encoder is a stack of alternating self-attention and feed-forward blocks with a pre-norm
residual layout:

    x = x + block(RMSNorm(x))        for block in (attn, ff, attn, ff, ...)
    out = LayerNorm(x)

* RMSNorm: ``x / max(||x||_2 * dim**-0.5, 1e-8) * g``.
* Attention: bias-free q/k/v projections of width ``64 * heads`` (the head width is always 64,
  whatever the model width), a biased output projection, softmax(q k^T / 8). Rotary position
  embedding is applied to the first 32 channels of each head of q, k *and* v (the official
  encoder rotates the values too; leaving them alone changes the scores).
* Feed-forward: GLU with exact-erf GELU gating, inner width ``dim * ff_mult``.
* Dropout modules exist only so that the module indices (and therefore state_dict keys) line up
  with the official checkpoints; they do nothing in eval mode.

Module attribute names reproduce the official state_dict keys, e.g.
``attn_layers.layers.{i}.0.0.g`` (pre-norm gain), ``attn_layers.layers.{i}.1.to_q.weight``,
``attn_layers.layers.{i}.1.net.0.proj.weight``, ``attn_layers.rotary_pos_emb.inv_freq`` and
``norm.weight``. CLVP's checkpoints carry an extra ``.wrap.`` segment after the block index
(a gradient-checkpointing wrapper in the training code); ``wrap_blocks=True`` reproduces it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

HEAD_DIM = 64  # fixed in the official encoder, independent of the model width
ROTARY_DIM = max(HEAD_DIM // 2, 32)


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned per-channel gain ``g`` (no bias, no mean removal)."""

    def __init__(self, dim: int, eps: float = 1e-8):
        super().__init__()
        self.scale = dim ** -0.5
        self.eps = eps
        self.g = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rms = torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale
        return x / rms.clamp(min=self.eps) * self.g


class RotaryEmbedding(nn.Module):
    """Rotation angles ``pos * inv_freq``, duplicated to cover both halves of the rotated channels."""

    def __init__(self, dim: int = ROTARY_DIM):
        super().__init__()
        # Persistent: the official checkpoints store it, and strict loading expects it.
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim)))

    def forward(self, seq_len: int) -> torch.Tensor:
        positions = torch.arange(seq_len, device=self.inv_freq.device).type_as(self.inv_freq)
        angles = torch.outer(positions, self.inv_freq)
        return torch.cat((angles, angles), dim=-1)  # (seq_len, rotary_dim)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary(t: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rotate the leading ``angles.shape[-1]`` channels of ``t`` (..., n, d); pass the rest through."""
    width = angles.shape[-1]
    rotated, passthrough = t[..., :width], t[..., width:]
    rotated = rotated * angles.cos() + _rotate_half(rotated) * angles.sin()
    return torch.cat((rotated, passthrough), dim=-1)


class Attention(nn.Module):
    """Bidirectional multi-head self-attention with rotary positions (no masking: see module doc)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        inner = HEAD_DIM * heads
        self.heads = heads
        self.scale = HEAD_DIM ** -0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.to_out = nn.Linear(inner, dim)

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, HEAD_DIM).transpose(1, 2)

    def forward(self, x: torch.Tensor, rotary: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = (self._split_heads(proj(x)) for proj in (self.to_q, self.to_k, self.to_v))
        if rotary is not None:
            q, k, v = (apply_rotary(t, rotary) for t in (q, k, v))
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        weights = self.dropout(scores.softmax(dim=-1))
        out = torch.matmul(weights, v)
        b, _, n, _ = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, self.heads * HEAD_DIM))


class GLU(nn.Module):
    """``a * gelu(b)`` where ``(a, b)`` are the two halves of one linear projection."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GLU feed-forward. ``net`` indices: 0 GLU, 1 (no post-activation norm), 2 dropout, 3 output."""

    def __init__(self, dim: int, mult: float, dropout: float = 0.0):
        super().__init__()
        inner = int(dim * mult)
        self.net = nn.Sequential(GLU(dim, inner), nn.Identity(), nn.Dropout(dropout), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BlockWrapper(nn.Module):
    """Pass-through holder that only adds the ``wrap`` segment CLVP's state_dict keys carry."""

    def __init__(self, wrap: nn.Module):
        super().__init__()
        self.wrap = wrap

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        return self.wrap(x, *args)


class AttentionLayers(nn.Module):
    """``depth`` (attention, feed-forward) pairs, each block pre-normed and added back residually.

    ``layers[i]`` is a ModuleList ``[norms, block]`` where ``norms[0]`` is the pre-norm. (The official
    layout also holds two unused norm slots and a parameter-free residual module; neither has
    state, so they are left out.)
    """

    def __init__(self, dim: int, depth: int, heads: int, ff_mult: float, ff_dropout: float = 0.0,
                 attn_dropout: float = 0.0, wrap_blocks: bool = False):
        super().__init__()
        self.rotary_pos_emb = RotaryEmbedding(ROTARY_DIM)
        self.layers = nn.ModuleList()
        self.layer_types: list[str] = []
        for _ in range(depth):
            for kind in ("a", "f"):
                block: nn.Module = (Attention(dim, heads, attn_dropout) if kind == "a"
                                    else FeedForward(dim, ff_mult, ff_dropout))
                if wrap_blocks:
                    block = BlockWrapper(block)
                self.layers.append(nn.ModuleList([nn.ModuleList([RMSNorm(dim)]), block]))
                self.layer_types.append(kind)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rotary = self.rotary_pos_emb(x.shape[1])
        for kind, (norms, block) in zip(self.layer_types, self.layers):
            normed = norms[0](x)
            out = block(normed, rotary) if kind == "a" else block(normed)
            x = out + x
        return x


class XTransformerEncoder(nn.Module):
    """Continuous-input encoder: (batch, seq, dim) embeddings -> (batch, seq, dim) features.

    No absolute position embedding (rotary only) and no input/output projections, matching how
    CLVP and CVVP configure it.
    """

    def __init__(self, dim: int, depth: int, heads: int, ff_mult: float, ff_dropout: float = 0.0,
                 attn_dropout: float = 0.0, wrap_blocks: bool = False):
        super().__init__()
        self.attn_layers = AttentionLayers(dim, depth, heads, ff_mult, ff_dropout, attn_dropout, wrap_blocks)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.attn_layers(x))
