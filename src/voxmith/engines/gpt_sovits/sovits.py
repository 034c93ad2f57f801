"""The SoVITS half of GPT-SoVITS v2 / v2Pro / v2ProPlus (32 kHz): semantic codes from HuBERT features,
and a waveform from semantic codes, phones and reference spectrograms.

Public API (what the engine calls):

    config = SoVITSConfig.for_version("v2")        # or SoVITSConfig.from_checkpoint(hps, version)
    model = SoVITS(config).eval()                   # load weights with sovits_checkpoint.load_sovits
    codes = model.extract_codes(hubert_features)    # (batch, 768, frames_50hz) -> (batch, frames_25hz) int64
    wave = model.decode(codes, phone_ids, reference_specs, speed=1.0, noise_scale=0.5,
                        sv_embedding=None, generator=None)   # -> (batch, samples) float in [-1, 1]

`codes` is `(batch, frames)` or `(frames,)` at 25 Hz (one codebook); `phone_ids` `(batch, phones)` or
`(phones,)` indexes the v2 symbol table (732 symbols); `reference_specs` is one linear spectrogram
`(1, 1025, frames)` (see `spectrogram.reference_spectrogram`) or a list of them, whose style vectors are
averaged (the official auxiliary references); v2Pro/v2ProPlus need `sv_embedding`, one `(1, 20480)`
embedding per reference (`speaker_verification.SpeakerVerifier.embed`), a list when `reference_specs` is.
The noise comes only from `generator` (a `torch.Generator`, on CPU or the model's device), never from
torch's global RNG, so concurrent requests stay reproducible; `noise_scale=0` needs none.
One output sample per 640 input samples, so `samples = 2 * frames_25hz * 640 / speed` roughly.

Math follows the official `module/models.py: SynthesizerTrn` (`extract_latent`, `decode`); training
(`forward` with the posterior encoder) is not here. v3/v4 (CFM decoder + vocoder) are separate models.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .sovits_modules import (MRTE, AttentionEncoder, CouplingFlow, Generator, MelStyleEncoder, PosteriorEncoder,
                             random_init, sequence_mask)

SAMPLE_RATE_HZ = 32000
HOP_LENGTH = 640            # output samples per 50 Hz latent frame
SSL_DIM = 768               # HuBERT feature width
STYLE_BINS = 704            # v2+: the style encoder sees the lowest 704 of the 1025 spectrogram bins
SV_EMBEDDING_DIM = 20480    # ERes2NetV2 pooled feature width (v2Pro/v2ProPlus)
PRO_VERSIONS = ("v2Pro", "v2ProPlus")
SUPPORTED_VERSIONS = ("v2",) + PRO_VERSIONS


@dataclass(frozen=True)
class SoVITSConfig:
    """Hyper-parameters of one SoVITS checkpoint (its `config["model"]` plus the spectrogram size)."""

    version: str = "v2"
    spec_channels: int = 1025              # filter_length // 2 + 1
    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    p_dropout: float = 0.1
    resblock_kernel_sizes: tuple = (3, 7, 11)
    resblock_dilation_sizes: tuple = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple = (10, 8, 2, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple = (16, 16, 8, 2, 2)
    gin_channels: int = 512
    n_symbols: int = 732                   # v2 symbol table (`text/symbols2.py`)
    codebook_size: int = 1024
    with_posterior: bool = field(default=False, compare=False)   # training only (`enc_q`)

    def __post_init__(self):
        if self.version not in SUPPORTED_VERSIONS:
            raise ValueError(f"SoVITS version {self.version!r} not supported here (have {SUPPORTED_VERSIONS})")

    @property
    def is_pro(self) -> bool:
        return self.version in PRO_VERSIONS

    @classmethod
    def for_version(cls, version: str) -> "SoVITSConfig":
        """The official pretrained layout of a version (`configs/s2.json`, `s2v2Pro.json`, `s2v2ProPlus.json`)."""
        if version == "v2Pro":
            return cls(version=version, p_dropout=0.0, gin_channels=1024)
        if version == "v2ProPlus":
            return cls(version=version, p_dropout=0.0, gin_channels=1024, upsample_initial_channel=768,
                       upsample_kernel_sizes=(20, 16, 8, 2, 2))
        return cls(version=version)

    @classmethod
    def from_checkpoint(cls, hps: dict, version: str) -> "SoVITSConfig":
        """From a checkpoint's `config` (`{"data": {...}, "model": {...}}`), keeping only known keys."""
        model = dict(hps.get("model", {}))
        # Variants the official v2 loader can build but no published v1/v2/v2Pro file uses.
        if str(model.get("resblock", "1")) != "1":
            raise ValueError(f"resblock {model['resblock']!r} (only the HiFi-GAN ResBlock1 of the official files)")
        if model.get("semantic_frame_rate", "25hz") != "25hz":
            raise ValueError(f"semantic_frame_rate {model['semantic_frame_rate']!r} (only 25hz)")
        known = {f.name for f in fields(cls)} - {"version", "spec_channels", "with_posterior"}
        kwargs = {k: (_as_tuple(v) if isinstance(v, list) else v) for k, v in model.items() if k in known}
        filter_length = int(hps.get("data", {}).get("filter_length", 2048))
        return cls(version=version, spec_channels=filter_length // 2 + 1, **kwargs)


def _as_tuple(value):
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value


class _Codebook(nn.Module):
    """One k-means/EMA codebook; the EMA statistics are kept only so official files load strictly."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of `x` (n, dim), by squared Euclidean distance."""
        embed = self.embed.t()
        neg_dist = -(x.pow(2).sum(1, keepdim=True) - 2 * x @ embed + embed.pow(2).sum(0, keepdim=True))
        return neg_dist.argmax(dim=-1)


class _QuantizerLayer(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self._codebook = _Codebook(size, dim)


class ResidualQuantizer(nn.Module):
    """Residual VQ with one 1024-entry codebook (official key layout `vq.layers.N._codebook.*`)."""

    def __init__(self, dim: int = SSL_DIM, size: int = 1024, n_q: int = 1):
        super().__init__()
        self.vq = nn.Module()
        self.vq.layers = nn.ModuleList(_QuantizerLayer(size, dim) for _ in range(n_q))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """`(batch, dim, frames)` -> codes `(n_q, batch, frames)`."""
        b, d, t = x.shape
        residual = x.transpose(1, 2).reshape(b * t, d)
        codes = []
        for layer in self.vq.layers:
            idx = layer._codebook.nearest(residual)
            residual = residual - F.embedding(idx, layer._codebook.embed)
            codes.append(idx.view(b, t))
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes `(n_q, batch, frames)` -> summed code vectors `(batch, dim, frames)`."""
        out = 0.0
        for layer, idx in zip(self.vq.layers, codes):
            out = out + F.embedding(idx, layer._codebook.embed)
        return out.transpose(1, 2)


class TextEncoder(nn.Module):
    """Prior encoder `enc_p`: semantic content + phones (joined by MRTE) + style -> mean and log-std."""

    def __init__(self, cfg: SoVITSConfig):
        super().__init__()
        h, f, heads, k, p = cfg.hidden_channels, cfg.filter_channels, cfg.n_heads, cfg.kernel_size, cfg.p_dropout
        self.out_channels = cfg.inter_channels
        self.ssl_proj = nn.Conv1d(SSL_DIM, h, 1)
        self.encoder_ssl = AttentionEncoder(h, f, heads, cfg.n_layers // 2, k, p)
        self.encoder_text = AttentionEncoder(h, f, heads, cfg.n_layers, k, p)
        # weight passed in so that building on the meta device runs no random init (see random_init)
        self.text_embedding = nn.Embedding(cfg.n_symbols, h, _weight=random_init(torch.empty(cfg.n_symbols, h), 1.0))
        self.mrte = MRTE()
        self.encoder2 = AttentionEncoder(h, f, heads, cfg.n_layers // 2, k, p)
        self.proj = nn.Conv1d(h, cfg.inter_channels * 2, 1)

    def forward(self, content: torch.Tensor, content_lengths: torch.Tensor, phones: torch.Tensor,
                phone_lengths: torch.Tensor, style: Optional[torch.Tensor], speed: float = 1.0):
        """Returns (mean, log_std, mask) at the (speed-stretched) 50 Hz frame rate."""
        mask = sequence_mask(content_lengths, content.shape[2], content.dtype)
        y = self.ssl_proj(content * mask) * mask
        y = self.encoder_ssl(y * mask, mask)
        text_mask = sequence_mask(phone_lengths, phones.shape[1], y.dtype)
        text = self.encoder_text(self.text_embedding(phones).transpose(1, 2) * text_mask, text_mask)
        y = self.mrte(y, mask, text, text_mask, style)
        y = self.encoder2(y * mask, mask)
        if speed != 1:
            # speed changes the number of latent frames, as the official `speed` does
            y = F.interpolate(y, size=int(y.shape[-1] / speed) + 1, mode="linear")
            mask = F.interpolate(mask, size=y.shape[-1], mode="nearest")
        stats = self.proj(y) * mask
        mean, log_std = stats.split(self.out_channels, dim=1)
        return mean, log_std, mask


RefSpecs = Union[torch.Tensor, Sequence[torch.Tensor]]


class SoVITS(nn.Module):
    """SoVITS v2 / v2Pro / v2ProPlus generator with the official `SynthesizerTrn` key names."""

    def __init__(self, config: SoVITSConfig = SoVITSConfig()):
        super().__init__()
        cfg = self.config = config
        self.enc_p = TextEncoder(cfg)
        self.dec = Generator(cfg.inter_channels, cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes,
                             cfg.upsample_rates, cfg.upsample_initial_channel, cfg.upsample_kernel_sizes,
                             gin_channels=cfg.gin_channels)
        if cfg.with_posterior:
            self.enc_q = PosteriorEncoder(cfg.spec_channels, cfg.inter_channels, cfg.hidden_channels, 5, 1, 16,
                                          gin_channels=cfg.gin_channels)
        self.flow = CouplingFlow(cfg.inter_channels, cfg.hidden_channels, 5, 1, 4, gin_channels=cfg.gin_channels)
        self.ref_enc = MelStyleEncoder(STYLE_BINS, cfg.gin_channels)
        self.ssl_proj = nn.Conv1d(SSL_DIM, SSL_DIM, 2, stride=2)    # 50 Hz HuBERT -> 25 Hz codes
        self.quantizer = ResidualQuantizer(SSL_DIM, cfg.codebook_size)
        if cfg.is_pro:
            self.sv_emb = nn.Linear(SV_EMBEDDING_DIM, cfg.gin_channels)
            self.ge_to512 = nn.Linear(cfg.gin_channels, 512)
            self.prelu = nn.PReLU(num_parameters=cfg.gin_channels)

    @property
    def upsample_factor(self) -> int:
        """Output samples per 50 Hz latent frame (640 for the official 32 kHz models)."""
        factor = 1
        for rate in self.config.upsample_rates:
            factor *= rate
        return factor

    @torch.no_grad()
    def extract_codes(self, hubert_features: torch.Tensor) -> torch.Tensor:
        """HuBERT `last_hidden_state` as `(batch, 768, frames)` (50 Hz) -> semantic codes `(batch, frames // 2)`."""
        if hubert_features.dim() != 3 or hubert_features.shape[1] != SSL_DIM:
            raise ValueError(f"hubert_features must be (batch, {SSL_DIM}, frames), got {tuple(hubert_features.shape)}")
        return self.quantizer.encode(self.ssl_proj(hubert_features))[0]

    def style(self, spec: torch.Tensor, sv_embedding: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Global style `(batch, gin, 1)` of one reference spectrogram (plus its speaker embedding for v2Pro)."""
        mask = torch.ones(spec.shape[0], 1, spec.shape[2], dtype=spec.dtype, device=spec.device)
        style = self.ref_enc(spec[:, :STYLE_BINS] * mask, mask)
        if self.config.is_pro:
            if sv_embedding is None:
                raise ValueError(f"SoVITS {self.config.version} needs a speaker-verification embedding per reference")
            style = self.prelu(style + self.sv_emb(sv_embedding).unsqueeze(-1))
        return style

    def mean_style(self, reference_specs: RefSpecs, sv_embedding=None) -> torch.Tensor:
        """Style averaged over several references (each style computed alone, then the mean)."""
        if isinstance(reference_specs, torch.Tensor):
            return self.style(reference_specs, sv_embedding)
        specs = list(reference_specs)
        if not specs:
            raise ValueError("decode needs at least one reference spectrogram")
        embeddings = list(sv_embedding) if sv_embedding is not None else [None] * len(specs)
        if len(embeddings) != len(specs):
            raise ValueError(f"{len(specs)} reference spectrograms but {len(embeddings)} speaker embeddings")
        return torch.stack([self.style(s, e) for s, e in zip(specs, embeddings)]).mean(0)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, phone_ids: torch.Tensor, reference_specs: RefSpecs, speed: float = 1.0,
               noise_scale: float = 0.5, sv_embedding=None,
               generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Semantic codes + phones + reference style -> waveform `(batch, samples)` at 32 kHz."""
        if codes.dim() == 1:
            codes = codes.unsqueeze(0)
        if phone_ids.dim() == 1:
            phone_ids = phone_ids.unsqueeze(0)
        if codes.dim() != 2 or phone_ids.dim() != 2:
            raise ValueError(f"codes and phone_ids must be (batch, n) or (n,), got {tuple(codes.shape)} and "
                             f"{tuple(phone_ids.shape)}")
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        style = self.mean_style(reference_specs, sv_embedding)
        content = self.quantizer.decode(codes.unsqueeze(0))
        content = F.interpolate(content, size=content.shape[-1] * 2, mode="nearest")   # 25 Hz -> 50 Hz
        batch = codes.shape[0]
        content_lengths = torch.full((batch,), content.shape[-1], dtype=torch.long, device=codes.device)
        phone_lengths = torch.full((batch,), phone_ids.shape[-1], dtype=torch.long, device=codes.device)
        prior_style = self.ge_to512(style.transpose(1, 2)).transpose(1, 2) if self.config.is_pro else style
        mean, log_std, mask = self.enc_p(content, content_lengths, phone_ids, phone_lengths, prior_style, speed)
        z_p = mean
        if noise_scale != 0:
            if generator is None:
                raise ValueError("decode with noise_scale != 0 needs a torch.Generator (the global RNG is not used)")
            noise = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=torch.float32)
            z_p = mean + noise.to(mean.device, mean.dtype) * torch.exp(log_std) * noise_scale
        z = self.flow(z_p, mask, g=style, reverse=True)
        return self.dec(z * mask, g=style).squeeze(1)
