"""SoVITS fine-tuning pieces (stage 1 of the GPT-SoVITS recipe): the generator's training pass and the
multi-period discriminator, with the official key names (`module/models.py: SynthesizerTrn.forward`,
`MultiPeriodDiscriminator`; the pretrained discriminators are `s2D*.pth`, `{"weight": ...}` in
weight-norm form, folded on load like the generator).

    out = train_forward(model, hubert_features, spec, spec_lengths, phone_ids, phone_lengths,
                        segment_frames=32, sv_embedding=None, generator=g)
    real, fake, real_maps, fake_maps = discriminator(wave_segment, out.wave)
    # losses: sovits_losses (mel of `out.slice_start`-aligned target segment, KL of out.z_p etc.)

The quantiser is frozen as in the official recipe (`freeze_quantizer`): semantic codes are looked up
without gradient, so `ssl_proj` and the codebook do not train and the commitment term is 0. Random
draws (the posterior sample, the training-segment start) come from `generator`, in the official order
(posterior noise, then one uniform per batch row), so a seeded generator reproduces the official run
seeded with torch.manual_seed. `model` must be built with `SoVITSConfig(with_posterior=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .sovits import STYLE_BINS, SoVITS
from .sovits_checkpoint import fold_weight_norm
from .sovits_modules import LRELU_SLOPE, sequence_mask

MPD_PERIODS = (2, 3, 5, 7, 11)
MPD_PERIODS_PRO = (2, 3, 5, 7, 11, 17, 23)   # v2Pro / v2ProPlus


@dataclass
class TrainOutput:
    wave: torch.Tensor          # (batch, 1, segment_frames * hop) generated training segment
    slice_start: torch.Tensor   # (batch,) first latent frame of each segment
    spec_mask: torch.Tensor     # (batch, 1, frames)
    z: torch.Tensor             # posterior sample
    z_p: torch.Tensor           # posterior sample through the flow (compared with the prior)
    m_p: torch.Tensor
    logs_p: torch.Tensor
    m_q: torch.Tensor
    logs_q: torch.Tensor
    commitment: torch.Tensor    # 0 with the frozen quantiser


def slice_segments(x: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """`length` frames of each batch row of `x` `(batch, channels, frames)` from its own start."""
    return torch.stack([x[i, :, int(s):int(s) + length] for i, s in enumerate(starts)])


def random_segment_starts(lengths: torch.Tensor, segment: int, generator: Optional[torch.Generator]) -> torch.Tensor:
    """One start per row, uniform over the positions where a whole segment fits (official rule)."""
    u = torch.rand(lengths.shape[0], generator=generator, device=generator.device if generator else None)
    return (u.to(lengths.device) * (lengths - segment + 1)).long()


def train_forward(model: SoVITS, hubert_features: torch.Tensor, spec: torch.Tensor, spec_lengths: torch.Tensor,
                  phone_ids: torch.Tensor, phone_lengths: torch.Tensor, segment_frames: int,
                  sv_embedding: Optional[torch.Tensor] = None,
                  generator: Optional[torch.Generator] = None) -> TrainOutput:
    """The generator's training pass on a padded batch (spectrogram and HuBERT features at 50 Hz)."""
    if not hasattr(model, "enc_q"):
        raise ValueError("train_forward needs a SoVITS built with SoVITSConfig(with_posterior=True)")
    mask = sequence_mask(spec_lengths, spec.shape[2], spec.dtype)
    style = model.ref_enc(spec[:, :STYLE_BINS] * mask, mask)
    prior_style = style
    if model.config.is_pro:
        if sv_embedding is None:
            raise ValueError(f"SoVITS {model.config.version} needs speaker-verification embeddings")
        style = model.prelu(style + model.sv_emb(sv_embedding).unsqueeze(-1))
        prior_style = model.ge_to512(style.transpose(1, 2)).transpose(1, 2)
    with torch.no_grad():          # frozen quantiser: lookups only
        codes = model.quantizer.encode(model.ssl_proj(hubert_features))
        content = model.quantizer.decode(codes)
    content = F.interpolate(content, size=content.shape[-1] * 2, mode="nearest")
    m_p, logs_p, _ = model.enc_p(content, spec_lengths, phone_ids, phone_lengths, prior_style)
    z, m_q, logs_q = model.enc_q(spec, mask, g=style, generator=generator)
    z_p = model.flow(z, mask, g=style)
    starts = random_segment_starts(spec_lengths, segment_frames, generator)
    wave = model.dec(slice_segments(z, starts, segment_frames), g=style)
    return TrainOutput(wave=wave, slice_start=starts, spec_mask=mask, z=z, z_p=z_p, m_p=m_p, logs_p=logs_p,
                       m_q=m_q, logs_q=logs_q, commitment=torch.zeros((), device=spec.device))


class PeriodDiscriminator(nn.Module):
    """Judges the waveform folded into `period` columns with (k x 1) 2-D convolutions."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3):
        super().__init__()
        self.period = period
        pad = ((kernel_size - 1) // 2, 0)
        widths = (1, 32, 128, 512, 1024, 1024)
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], (kernel_size, 1), (stride if i < 4 else 1, 1), padding=pad)
            for i in range(5))
        self.conv_post = nn.Conv2d(1024, 1, (3, 1), 1, padding=(1, 0))

    def forward(self, x: torch.Tensor):
        b, c, t = x.shape
        if t % self.period:
            x = F.pad(x, (0, self.period - t % self.period), "reflect")
        x = x.view(b, c, -1, self.period)
        maps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            maps.append(x)
        x = self.conv_post(x)
        maps.append(x)
        return torch.flatten(x, 1, -1), maps


class ScaleDiscriminator(nn.Module):
    """Judges the raw waveform with grouped strided 1-D convolutions."""

    def __init__(self):
        super().__init__()
        spec = ((1, 16, 15, 1, 1, 7), (16, 64, 41, 4, 4, 20), (64, 256, 41, 4, 16, 20),
                (256, 1024, 41, 4, 64, 20), (1024, 1024, 41, 4, 256, 20), (1024, 1024, 5, 1, 1, 2))
        self.convs = nn.ModuleList(nn.Conv1d(i, o, k, s, groups=g, padding=p) for i, o, k, s, g, p in spec)
        self.conv_post = nn.Conv1d(1024, 1, 3, 1, padding=1)

    def forward(self, x: torch.Tensor):
        maps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            maps.append(x)
        x = self.conv_post(x)
        maps.append(x)
        return torch.flatten(x, 1, -1), maps


class MultiPeriodDiscriminator(nn.Module):
    """One scale discriminator and one per period (7 periods for v2Pro/v2ProPlus, else 5)."""

    def __init__(self, version: str = "v2"):
        super().__init__()
        periods = MPD_PERIODS_PRO if version in ("v2Pro", "v2ProPlus") else MPD_PERIODS
        self.discriminators = nn.ModuleList([ScaleDiscriminator(), *(PeriodDiscriminator(p) for p in periods)])

    def forward(self, real: torch.Tensor, fake: torch.Tensor):
        """Returns (real scores, fake scores, real feature maps, fake feature maps), one entry per discriminator."""
        out = ([], [], [], [])
        for disc in self.discriminators:
            r, r_maps = disc(real)
            f, f_maps = disc(fake)
            for bucket, item in zip(out, (r, f, r_maps, f_maps)):
                bucket.append(item)
        return out


def discriminator_weight_norm_form(state_dict: dict) -> dict:
    """Our plain discriminator weights in the official checkpoint layout (every conv weight-normed)."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith(".weight") and value.dim() >= 3:
            stem = key[: -len(".weight")]
            out[stem + ".weight_g"] = torch.linalg.vector_norm(value, dim=tuple(range(1, value.dim())), keepdim=True)
            out[stem + ".weight_v"] = value
        else:
            out[key] = value
    return out


def load_discriminator(path, version: str = "v2") -> MultiPeriodDiscriminator:
    """The official pretrained discriminator file (`{"weight": state}`, convolutions weight-normed)
    as a `MultiPeriodDiscriminator`; ValueError when it is not one."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        state = fold_weight_norm(raw["weight"] if isinstance(raw, dict) and "weight" in raw else raw)
        model = MultiPeriodDiscriminator(version)
        model.load_state_dict(state, strict=True)
    except Exception as err:  # torch raises many types for damaged or foreign files
        raise ValueError(f"{path} is not a GPT-SoVITS {version} discriminator ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:200] if str(err) else ''})") from None
    return model
