"""CLVP: the contrastive text/speech-code model TorToiSe uses to rank autoregressive candidates.

Text tokens and speech codes are embedded, run through separate x-transformer encoders, averaged
over time, projected to a shared latent space and L2-normalised; the score of a (text, codes) pair
is their dot product times ``exp(temperature)``.

As in the official eval path, the average runs over *every* position: trailing text padding and the
calm/stop padding of fixed-up code rows are included, not masked out. Rankings depend on this.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .xtransformer import XTransformerEncoder


@dataclass(frozen=True)
class CLVPConfig:
    """Defaults are the sizes TorToiSe's api.py builds CLVP with (checkpoint ``clvp2.pth``)."""

    dim_text: int = 768
    dim_speech: int = 768
    dim_latent: int = 768
    num_text_tokens: int = 256
    text_enc_depth: int = 20
    text_heads: int = 12
    num_speech_tokens: int = 8192
    speech_enc_depth: int = 20
    speech_heads: int = 12
    ff_mult: float = 2
    # Training-time regularisation; inert in eval, kept so train() mode would behave as upstream.
    dropout: float = 0.1

    @classmethod
    def tiny(cls) -> "CLVPConfig":
        """The small random-weight configuration used by the golden tests."""
        return cls(dim_text=64, dim_speech=64, dim_latent=64, text_enc_depth=2, text_heads=2,
                   speech_enc_depth=2, speech_heads=2)


class _EncoderHolder(nn.Module):
    """Adds the ``transformer.`` key segment of the official checkpoint layout."""

    def __init__(self, encoder: XTransformerEncoder):
        super().__init__()
        self.transformer = encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer(x)


def _encoder(dim: int, depth: int, heads: int, cfg: CLVPConfig) -> _EncoderHolder:
    return _EncoderHolder(XTransformerEncoder(dim, depth, heads, cfg.ff_mult, ff_dropout=cfg.dropout,
                                              attn_dropout=cfg.dropout, wrap_blocks=True))


class CLVP(nn.Module):
    """Scores how well speech codes match a text. Loads the official ``clvp2.pth`` state_dict strictly."""

    def __init__(self, config: CLVPConfig | None = None):
        super().__init__()
        cfg = config or CLVPConfig()
        self.config = cfg
        self.text_emb = nn.Embedding(cfg.num_text_tokens, cfg.dim_text)
        self.to_text_latent = nn.Linear(cfg.dim_text, cfg.dim_latent, bias=False)
        self.speech_emb = nn.Embedding(cfg.num_speech_tokens, cfg.dim_speech)
        self.to_speech_latent = nn.Linear(cfg.dim_speech, cfg.dim_latent, bias=False)
        self.text_transformer = _encoder(cfg.dim_text, cfg.text_enc_depth, cfg.text_heads, cfg)
        self.speech_transformer = _encoder(cfg.dim_speech, cfg.speech_enc_depth, cfg.speech_heads, cfg)
        self.temperature = nn.Parameter(torch.tensor(1.0))

    def text_latent(self, text_tokens: torch.Tensor) -> torch.Tensor:
        """(batch, n_text) token ids -> (batch, dim_latent) unit-norm latents."""
        encoded = self.text_transformer(self.text_emb(text_tokens))
        return F.normalize(self.to_text_latent(encoded.mean(dim=1)), p=2, dim=-1)

    def speech_latent(self, speech_codes: torch.Tensor) -> torch.Tensor:
        """(batch, n_codes) codes in [0, num_speech_tokens) -> (batch, dim_latent) unit-norm latents.

        The stop token (8193) must already have been replaced (the fix-up does this): the embedding
        has only ``num_speech_tokens`` rows.
        """
        encoded = self.speech_transformer(self.speech_emb(speech_codes))
        return F.normalize(self.to_speech_latent(encoded.mean(dim=1)), p=2, dim=-1)

    def similarity(self, text_tokens: torch.Tensor, speech_codes: torch.Tensor) -> torch.Tensor:
        """Row-wise scores (batch,): text row i against code row i, scaled by ``exp(temperature)``."""
        text = self.text_latent(text_tokens)
        speech = self.speech_latent(speech_codes)
        return (text * speech).sum(dim=-1) * self.temperature.exp()

    def forward(self, text_tokens: torch.Tensor, speech_codes: torch.Tensor) -> torch.Tensor:
        return self.similarity(text_tokens, speech_codes)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self.config).items())
