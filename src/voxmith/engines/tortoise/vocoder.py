"""UnivNet vocoder for TorToiSe: turns a 100-channel natural-log mel (24 kHz, hop 256) into a waveform.

The generator upsamples a noise sequence by 8*8*4 = 256 through three location-variable convolution
(LVC) blocks whose per-frame kernels are predicted from the mel. The released checkpoint stores the
generator under `ckpt['model_g']` in weight-norm form (`weight_g`/`weight_v`); this module holds plain
weights only (the state official inference uses after `remove_weight_norm`), and
`fold_weight_norm` / `load_model_g` convert the checkpoint form on load.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# log(1e-5): the mel value of silence, appended after the mel to avoid an artifact at the end.
SILENCE_MEL = -11.5129
PAD_FRAMES = 10


@dataclass(frozen=True)
class UnivNetConfig:
    noise_dim: int = 64
    channel_size: int = 32
    dilations: tuple[int, ...] = (1, 3, 9, 27)
    strides: tuple[int, ...] = (8, 8, 4)
    lrelu_slope: float = 0.2
    kpnet_conv_size: int = 3
    kpnet_hidden_channels: int = 64
    hop_length: int = 256
    n_mel_channels: int = 100

    @classmethod
    def tiny(cls) -> "UnivNetConfig":
        return cls(channel_size=8)


class KernelPredictor(nn.Module):
    """Predicts, for every mel frame, the kernels and biases of all LVC layers of one block."""

    def __init__(self, cond_channels: int, conv_in: int, conv_out: int, n_layers: int, kernel_size: int,
                 hidden: int, kp_kernel: int, slope: float):
        super().__init__()
        self.conv_in, self.conv_out, self.n_layers, self.kernel_size = conv_in, conv_out, n_layers, kernel_size
        pad = (kp_kernel - 1) // 2
        self.input_conv = nn.Sequential(nn.Conv1d(cond_channels, hidden, 5, padding=2), nn.LeakyReLU(slope))
        # Index layout (Dropout, conv, act, conv, act) fixes the checkpoint keys `.1.` and `.3.`.
        self.residual_convs = nn.ModuleList(
            nn.Sequential(nn.Dropout(0.0), nn.Conv1d(hidden, hidden, kp_kernel, padding=pad), nn.LeakyReLU(slope),
                          nn.Conv1d(hidden, hidden, kp_kernel, padding=pad), nn.LeakyReLU(slope))
            for _ in range(3))
        self.kernel_conv = nn.Conv1d(hidden, conv_in * conv_out * kernel_size * n_layers, kp_kernel, padding=pad)
        self.bias_conv = nn.Conv1d(hidden, conv_out * n_layers, kp_kernel, padding=pad)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, frames = mel.shape
        h = self.input_conv(mel)
        for block in self.residual_convs:
            h = h + block(h)
        kernels = self.kernel_conv(h).reshape(batch, self.n_layers, self.conv_in, self.conv_out,
                                              self.kernel_size, frames)
        biases = self.bias_conv(h).reshape(batch, self.n_layers, self.conv_out, frames)
        return kernels, biases


def location_variable_conv(x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor, hop: int) -> torch.Tensor:
    """Convolve each hop-long stretch of `x` with the kernel predicted for its frame (dilation 1).

    x (B, Cin, frames*hop), kernel (B, Cin, Cout, K, frames), bias (B, Cout, frames) -> (B, Cout, frames*hop).
    """
    batch, _, length = x.shape
    _, _, c_out, k, frames = kernel.shape
    if length != frames * hop:
        raise ValueError(f"signal length {length} does not match {frames} frames of hop {hop}")
    pad = (k - 1) // 2
    windows = F.pad(x, (pad, pad)).unfold(2, hop + 2 * pad, hop)   # (B, Cin, frames, hop+2pad)
    taps = windows.unfold(3, k, 1)                                  # (B, Cin, frames, hop, K)
    out = torch.einsum("bilsk,biokl->bols", taps, kernel) + bias[..., None]
    return out.reshape(batch, c_out, frames * hop)


class LVCBlock(nn.Module):
    """Upsample by `stride`, then gated residual LVC layers, one per dilation."""

    def __init__(self, cfg: UnivNetConfig, stride: int, cond_hop: int):
        super().__init__()
        ch, slope = cfg.channel_size, cfg.lrelu_slope
        self.cond_hop = cond_hop
        # The kernel predictor gets the block's slope (0.2), not its own 0.1 default, as official.
        self.kernel_predictor = KernelPredictor(cfg.n_mel_channels, ch, 2 * ch, len(cfg.dilations), 3,
                                                cfg.kpnet_hidden_channels, cfg.kpnet_conv_size, slope)
        self.convt_pre = nn.Sequential(
            nn.LeakyReLU(slope),
            nn.ConvTranspose1d(ch, ch, 2 * stride, stride=stride, padding=stride // 2 + stride % 2,
                               output_padding=stride % 2))
        self.conv_blocks = nn.ModuleList(
            nn.Sequential(nn.LeakyReLU(slope), nn.Conv1d(ch, ch, 3, padding=d, dilation=d), nn.LeakyReLU(slope))
            for d in cfg.dilations)

    def forward(self, x: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = self.convt_pre(x)
        kernels, biases = self.kernel_predictor(mel)
        for i, conv in enumerate(self.conv_blocks):
            y = location_variable_conv(conv(x), kernels[:, i], biases[:, i], self.cond_hop)
            x = x + torch.sigmoid(y[:, :channels]) * torch.tanh(y[:, channels:])
        return x


class UnivNetGenerator(nn.Module):
    """UnivNet-c32 generator with plain (weight-norm-folded) weights; official key names."""

    def __init__(self, config: UnivNetConfig | None = None):
        super().__init__()
        cfg = self.config = config or UnivNetConfig()
        hop = 1
        blocks = []
        for stride in cfg.strides:
            hop *= stride
            blocks.append(LVCBlock(cfg, stride, hop))
        if hop != cfg.hop_length:
            raise ValueError(f"strides {cfg.strides} multiply to {hop}, not hop_length {cfg.hop_length}")
        self.res_stack = nn.ModuleList(blocks)
        self.conv_pre = nn.Conv1d(cfg.noise_dim, cfg.channel_size, 7, padding=3, padding_mode="reflect")
        self.conv_post = nn.Sequential(
            nn.LeakyReLU(cfg.lrelu_slope),
            nn.Conv1d(cfg.channel_size, 1, 7, padding=3, padding_mode="reflect"),
            nn.Tanh())

    def forward(self, mel: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """mel (B, 100, T), noise (B, noise_dim, T) -> audio (B, 1, T*256) in (-1, 1)."""
        z = self.conv_pre(noise)
        for block in self.res_stack:
            z = block(z, mel)
        return self.conv_post(z)

    @torch.no_grad()
    def inference(self, mel: torch.Tensor, noise: torch.Tensor | None = None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
        """Official inference: pad 10 silent frames, draw noise, run, drop the padding, clamp to [-1, 1].

        Without `noise` it is drawn on the CPU from `generator` (the global torch RNG when None) and then
        moved, exactly as official does, so seeded runs consume the CPU RNG in the official order.
        """
        batch = mel.shape[0]
        silence = torch.full((batch, self.config.n_mel_channels, PAD_FRAMES), SILENCE_MEL,
                             dtype=mel.dtype, device=mel.device)
        padded = torch.cat((mel, silence), dim=2)
        if noise is None:
            noise = torch.randn(batch, self.config.noise_dim, padded.shape[2], generator=generator)
        audio = self.forward(padded, noise.to(device=mel.device, dtype=mel.dtype))
        audio = audio[:, :, :-(self.config.hop_length * PAD_FRAMES)]
        return audio.clamp(min=-1, max=1)


def fold_weight_norm(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace every `X.weight_g`/`X.weight_v` pair by `X.weight = g * v / ||v||`.

    The norm is taken over all dims but 0 (torch weight_norm's default dim=0); for ConvTranspose1d that
    is per *input* channel, which the same formula handles. Other keys pass through unchanged.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(".weight_g"):
            continue
        if key.endswith(".weight_v"):
            stem = key[: -len(".weight_v")]
            g = state_dict[stem + ".weight_g"]
            dims = tuple(range(1, value.dim()))
            out[stem + ".weight"] = value * (g / torch.linalg.vector_norm(value, dim=dims, keepdim=True))
        else:
            out[key] = value
    orphans = [k for k in state_dict if k.endswith(".weight_g") and k[:-1] + "v" not in state_dict]
    if orphans:
        raise KeyError(f"weight_g without weight_v: {orphans[:3]}")
    return out


def to_weight_norm_form(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `fold_weight_norm` for this generator: every conv weight `X.weight` (3-D; all convs of
    UnivNet are weight-normed) becomes `X.weight_g = ||w||` and `X.weight_v = w`, the checkpoint's
    `model_g` layout. Used to check key sets and to build test checkpoints."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(".weight") and value.dim() == 3:
            stem = key[: -len(".weight")]
            out[stem + ".weight_g"] = torch.linalg.vector_norm(value, dim=(1, 2), keepdim=True)
            out[stem + ".weight_v"] = value
        else:
            out[key] = value
    return out


def load_model_g(model: UnivNetGenerator, state_dict: dict[str, torch.Tensor]) -> UnivNetGenerator:
    """Load the checkpoint's `model_g` (weight-norm form, or already folded) strictly."""
    model.load_state_dict(fold_weight_norm(state_dict), strict=True)
    return model
