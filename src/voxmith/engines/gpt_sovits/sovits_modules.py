"""Building blocks of the GPT-SoVITS SoVITS model (a VITS variant): attention encoder, WaveNet stack,
flow, HiFi-GAN generator and the mel style encoder.

Attribute names follow the official module tree (`GPT_SoVITS/module/attentions.py`, `modules.py`,
`models.py`) so the official checkpoints load by their own key names. Convolutions hold plain weights:
the checkpoints store many of them in weight-norm form (`weight_g`/`weight_v`), which
`sovits_checkpoint.fold_weight_norm` folds on load (what official inference computes with anyway).
Every module takes channel-first tensors `(batch, channels, frames)` and a `(batch, 1, frames)` mask
of ones and zeros unless said otherwise.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.1


def sequence_mask(lengths: torch.Tensor, max_length: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """`(batch, 1, max_length)` mask: 1 inside each sequence, 0 in its padding."""
    steps = torch.arange(max_length, device=lengths.device)
    return (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1).to(dtype)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a channel-first tensor (official keys `gamma`/`beta`)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return y.transpose(1, -1)


def random_init(t: torch.Tensor, std: float) -> torch.Tensor:
    """Normal init in place, skipped on the meta device."""
    # Skipped on the meta device (models built there to be loaded): random ops on meta tensors run
    # torch's Python reference kernels, whose first use imports torch._dynamo (seconds of start-up).
    return t if t.device.type == "meta" else t.normal_(0.0, std)


class MultiHeadAttention(nn.Module):
    """VITS multi-head attention with 1x1-conv projections and, when `window_size` is set, learned
    relative-position embeddings shared by all heads (keys and values, offsets -window..+window)."""

    def __init__(self, channels: int, out_channels: int, n_heads: int, window_size: Optional[int] = None,
                 p_dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(p_dropout)
        if channels % n_heads:
            raise ValueError(f"channels {channels} not divisible by heads {n_heads}")
        self.n_heads, self.head_dim, self.window_size = n_heads, channels // n_heads, window_size
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        if window_size is not None:
            shape = (1, 2 * window_size + 1, self.head_dim)
            self.emb_rel_k = nn.Parameter(random_init(torch.empty(shape), self.head_dim ** -0.5))
            self.emb_rel_v = nn.Parameter(random_init(torch.empty(shape), self.head_dim ** -0.5))

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # (b, c, t) -> (b, heads, t, head_dim)
        b, _, t = x.shape
        return x.view(b, self.n_heads, self.head_dim, t).transpose(2, 3)

    def _relative_table(self, table: torch.Tensor, length: int) -> torch.Tensor:
        """Rows for offsets -(length-1)..(length-1); offsets beyond the window get zero rows."""
        w = self.window_size
        pad = max(length - (w + 1), 0)
        start = max((w + 1) - length, 0)
        if pad:
            table = F.pad(table, (0, 0, pad, pad))
        return table[:, start:start + 2 * length - 1]

    def forward(self, x: torch.Tensor, context: torch.Tensor, attn_mask: Optional[torch.Tensor] = None):
        q = self._split(self.conv_q(x)) / math.sqrt(self.head_dim)
        k = self._split(self.conv_k(context))
        v = self._split(self.conv_v(context))
        scores = q @ k.transpose(-2, -1)                                   # (b, h, t_q, t_k)
        if self.window_size is not None:
            length = k.shape[2]
            if q.shape[2] != length:
                raise ValueError("relative attention needs queries and keys of the same length")
            # offset index j - i + length - 1 of each (query i, key j) pair in the relative table
            steps = torch.arange(length, device=x.device)
            offset = (steps.unsqueeze(0) - steps.unsqueeze(1) + length - 1).expand(*scores.shape)
            rel_k = self._relative_table(self.emb_rel_k, length)          # (1, 2L-1, d)
            rel_logits = q @ rel_k.unsqueeze(0).transpose(-2, -1)          # (b, h, L, 2L-1)
            scores = scores + torch.gather(rel_logits, -1, offset)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, -1e4)
        probs = self.drop(F.softmax(scores, dim=-1))
        out = probs @ v
        if self.window_size is not None:
            by_offset = torch.zeros(*probs.shape[:-1], 2 * length - 1, dtype=probs.dtype, device=probs.device)
            by_offset.scatter_(-1, offset, probs)
            out = out + by_offset @ self._relative_table(self.emb_rel_v, length).unsqueeze(0)
        b, h, t, d = out.shape
        return self.conv_o(out.transpose(2, 3).reshape(b, h * d, t))


class FeedForward(nn.Module):
    """Two 'same'-padded convolutions with a ReLU between, masked before each."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int, p_dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(p_dropout)
        self.pad = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.drop(torch.relu(self.conv_1(F.pad(x * mask, self.pad))))
        return self.conv_2(F.pad(x * mask, self.pad)) * mask


class AttentionEncoder(nn.Module):
    """Post-norm transformer encoder with relative-position self-attention (window 4)."""

    def __init__(self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 p_dropout: float = 0.0, window_size: int = 4):
        super().__init__()
        self.drop = nn.Dropout(p_dropout)
        self.attn_layers = nn.ModuleList(MultiHeadAttention(channels, channels, n_heads, window_size, p_dropout)
                                         for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FeedForward(channels, filter_channels, kernel_size, p_dropout)
                                        for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x * mask
        for attn, norm1, ffn, norm2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = norm1(x + self.drop(attn(x, x, attn_mask)))
            x = norm2(x + self.drop(ffn(x, mask)))
        return x * mask


def gated_tanh(x: torch.Tensor, channels: int) -> torch.Tensor:
    return torch.tanh(x[:, :channels]) * torch.sigmoid(x[:, channels:])


class WaveNet(nn.Module):
    """Non-causal WaveNet stack (dilated gated convolutions with a global condition `g`)."""

    def __init__(self, channels: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int = 0):
        super().__init__()
        self.channels = channels
        if gin_channels:
            self.cond_layer = nn.Conv1d(gin_channels, 2 * channels * n_layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            dilation = dilation_rate ** i
            self.in_layers.append(nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation,
                                            padding=(kernel_size * dilation - dilation) // 2))
            # the last layer only feeds the skip sum, so it needs no residual half
            out = 2 * channels if i < n_layers - 1 else channels
            self.res_skip_layers.append(nn.Conv1d(channels, out, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        c = self.channels
        cond = self.cond_layer(g) if g is not None else None
        output = torch.zeros_like(x)
        last = len(self.in_layers) - 1
        for i, (in_layer, res_skip) in enumerate(zip(self.in_layers, self.res_skip_layers)):
            h = in_layer(x)
            if cond is not None:
                h = h + cond[:, i * 2 * c:(i + 1) * 2 * c]
            acts = res_skip(gated_tanh(h, c))
            if i < last:
                x = (x + acts[:, :c]) * mask
                output = output + acts[:, c:]
            else:
                output = output + acts
        return output * mask


class ResidualCouplingLayer(nn.Module):
    """Mean-only affine coupling: the second half is shifted by a WaveNet of the first half."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 gin_channels: int = 0):
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels)
        self.post = nn.Conv1d(hidden_channels, self.half, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: Optional[torch.Tensor] = None,
                reverse: bool = False) -> torch.Tensor:
        x0, x1 = x[:, :self.half], x[:, self.half:]
        shift = self.post(self.enc(self.pre(x0) * mask, mask, g=g)) * mask
        x1 = (x1 - shift) * mask if reverse else shift + x1 * mask
        return torch.cat([x0, x1], 1)


class Flip(nn.Module):
    """Reverses the channel order between couplings (no weights; keeps the official module indices)."""

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return torch.flip(x, [1])


class CouplingFlow(nn.Module):
    """Four couplings, each followed by a Flip (official `ResidualCouplingBlock`)."""

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 n_flows: int = 4, gin_channels: int = 0):
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_flows):
            self.flows.append(ResidualCouplingLayer(channels, hidden_channels, kernel_size, dilation_rate,
                                                    n_layers, gin_channels))
            self.flows.append(Flip())

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: Optional[torch.Tensor] = None,
                reverse: bool = False) -> torch.Tensor:
        for flow in (reversed(self.flows) if reverse else self.flows):
            x = flow(x, mask, g=g, reverse=reverse)
        return x


class PosteriorEncoder(nn.Module):
    """Linear spectrogram -> (z, mean, log-std); used in training only (absent from inference files)."""

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, kernel_size: int,
                 dilation_rate: int, n_layers: int, gin_channels: int = 0):
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden_channels, 1)
        self.enc = WaveNet(hidden_channels, kernel_size, dilation_rate, n_layers, gin_channels)
        self.proj = nn.Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(self, spec: torch.Tensor, mask: torch.Tensor, g: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None):
        g = g.detach() if g is not None else None   # official: the style does not learn through here
        stats = self.proj(self.enc(self.pre(spec) * mask, mask, g=g)) * mask
        mean, log_std = stats.split(self.out_channels, dim=1)
        noise = torch.randn(mean.shape, generator=generator, device=generator.device if generator else mean.device)
        noise = noise.to(mean.device, mean.dtype)
        return (mean + noise * torch.exp(log_std)) * mask, mean, log_std


def _dilated_padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """HiFi-GAN residual block: three (dilated conv, conv) pairs with leaky ReLUs."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size, dilation=d,
                                              padding=_dilated_padding(kernel_size, d)) for d in dilations)
        self.convs2 = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size,
                                              padding=_dilated_padding(kernel_size, 1)) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """HiFi-GAN generator: latent frames -> waveform in [-1, 1], upsampled by prod(upsample_rates)."""

    def __init__(self, in_channels: int, resblock_kernel_sizes: Sequence[int],
                 resblock_dilation_sizes: Sequence[Sequence[int]], upsample_rates: Sequence[int],
                 upsample_initial_channel: int, upsample_kernel_sizes: Sequence[int], gin_channels: int = 0):
        super().__init__()
        self.n_kernels = len(resblock_kernel_sizes)
        self.conv_pre = nn.Conv1d(in_channels, upsample_initial_channel, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes):
            self.ups.append(nn.ConvTranspose1d(ch, ch // 2, kernel, rate, padding=(kernel - rate) // 2))
            ch //= 2
            for k, d in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(ResBlock1(ch, k, d))
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3, bias=False)
        if gin_channels:
            self.cond = nn.Conv1d(gin_channels, upsample_initial_channel, 1)

    def forward(self, x: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = self.conv_pre(x)
        if g is not None:
            x = x + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.n_kernels:(i + 1) * self.n_kernels]
            total = blocks[0](x)
            for block in blocks[1:]:
                total = total + block(x)
            x = total / self.n_kernels
        # the last activation uses torch's default slope 0.01, not LRELU_SLOPE (as the official code)
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


class _Linear(nn.Module):
    """A Linear under the attribute name `fc` (official `LinearNorm` key layout)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class _GatedConv(nn.Module):
    """Residual gated-linear-unit convolution (official `Conv1dGLU`, key `conv1.conv`)."""

    def __init__(self, channels: int, kernel_size: int, p_dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(p_dropout)
        self.conv1 = nn.Module()
        self.conv1.conv = nn.Conv1d(channels, 2 * channels, kernel_size, padding=(kernel_size - 1) // 2)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1.conv(x)
        return x + self.dropout(h[:, :self.channels] * torch.sigmoid(h[:, self.channels:]))


class _StyleAttention(nn.Module):
    """Self-attention of the style encoder: Linear projections, scores scaled by sqrt(model width)
    (not of the head width, as the official module does), a residual connection."""

    def __init__(self, n_heads: int, width: int, p_dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.dropout = nn.Dropout(p_dropout)
        self.w_qs = nn.Linear(width, width)
        self.w_ks = nn.Linear(width, width)
        self.w_vs = nn.Linear(width, width)
        self.fc = nn.Linear(width, width)
        self.scale = math.sqrt(width)

    def forward(self, x: torch.Tensor, pad: Optional[torch.Tensor]) -> torch.Tensor:
        b, t, c = x.shape
        h = self.n_heads

        def heads(y):
            return y.view(b, t, h, c // h).transpose(1, 2)            # (b, h, t, d)

        scores = heads(self.w_qs(x)) @ heads(self.w_ks(x)).transpose(-2, -1) / self.scale
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        out = self.dropout(torch.softmax(scores, dim=-1)) @ heads(self.w_vs(x))
        return self.dropout(self.fc(out.transpose(1, 2).reshape(b, t, c))) + x


class MelStyleEncoder(nn.Module):
    """Global style vector of a reference spectrogram: per-frame MLP, two gated convolutions,
    self-attention, projection and a masked average over time. Returns `(batch, out_dim, 1)`."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 128, kernel_size: int = 5, n_heads: int = 2,
                 p_dropout: float = 0.1):
        super().__init__()
        # Sequential indices 0 and 3 hold the Linears; Mish/Dropout sit between (official key layout).
        self.spectral = nn.Sequential(_Linear(in_dim, hidden), nn.Mish(), nn.Dropout(p_dropout),
                                      _Linear(hidden, hidden), nn.Mish(), nn.Dropout(p_dropout))
        self.temporal = nn.Sequential(_GatedConv(hidden, kernel_size, p_dropout),
                                      _GatedConv(hidden, kernel_size, p_dropout))
        self.slf_attn = _StyleAttention(n_heads, hidden, p_dropout)
        self.fc = _Linear(hidden, out_dim)

    def forward(self, spec: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        pad = (mask == 0).squeeze(1) if mask is not None else None        # (b, t) True on padding
        x = self.spectral(spec.transpose(1, 2))
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        if pad is not None:
            x = x.masked_fill(pad.unsqueeze(-1), 0)
        x = self.fc(self.slf_attn(x, pad))
        if pad is None:
            return x.mean(dim=1).unsqueeze(-1)
        lengths = (~pad).sum(dim=1, keepdim=True).unsqueeze(1)
        x = x.masked_fill(pad.unsqueeze(-1), 0).float() / lengths
        return x.sum(dim=1).to(spec.dtype).unsqueeze(-1)


class MRTE(nn.Module):
    """Multi-reference timbre encoder: the content attends to the phones, then the style is added.
    Widths are fixed by the official module (192 in/out, 512 inside, 4 heads)."""

    def __init__(self, content_channels: int = 192, hidden: int = 512, out_channels: int = 192, n_heads: int = 4):
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden, hidden, n_heads)
        self.c_pre = nn.Conv1d(content_channels, hidden, 1)
        self.text_pre = nn.Conv1d(content_channels, hidden, 1)
        self.c_post = nn.Conv1d(hidden, out_channels, 1)

    def forward(self, content: torch.Tensor, content_mask: torch.Tensor, text: torch.Tensor,
                text_mask: torch.Tensor, style: Optional[torch.Tensor]) -> torch.Tensor:
        attn_mask = text_mask.unsqueeze(2) * content_mask.unsqueeze(-1)
        content = self.c_pre(content * content_mask)
        text = self.text_pre(text * text_mask)
        x = self.cross_attention(content * content_mask, text * text_mask, attn_mask) + content
        if style is not None:
            x = x + style
        return self.c_post(x * content_mask)
