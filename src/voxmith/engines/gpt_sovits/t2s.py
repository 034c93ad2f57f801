"""The GPT-SoVITS "GPT": a text-to-semantic decoder (phones + BERT features -> 25 Hz semantic codes).

One transformer runs over `[text positions, semantic code positions]`:
* text positions: phone embedding + a projection of the 1024-d BERT feature of that phone (zeros
  except for Chinese), plus a sine positional table scaled by a learned `alpha`;
* code positions: code embedding (1024 codes + EOS 1024) plus their own sine table and `alpha`,
  numbered from 0 at the first code of the reference prompt;
* attention: every text position sees all text and no code; every code position sees all text and
  the codes up to itself;
* post-norm layers (attention, add, LayerNorm, ReLU feed-forward, add, LayerNorm) and a bias-free head
  over the code vocabulary; the last text position predicts the first code.

What this module gives:
* `forward(phone_ids, bert_features, codes)`: the full-sequence pass (logits for every code position),
  the computation training and the official `infer` use;
* `prefill(...)` and `decode_step(...)`: the kv-cache path used for generation (the official
  `process_prompt` / `decode_next_token`), with a preallocated cache (`KVCache`);
* `run_layers(x, attend)`: the transformer alone, for padded training batches (see t2s_loss.py).

Attribute names reproduce the official `Text2SemanticDecoder` state_dict keys (`bert_proj`,
`ar_text_embedding.word_embeddings`, `ar_text_position.alpha`, `h.layers.{i}.self_attn.in_proj_weight`,
...), so a checkpoint's `weight` dict loads with `load_state_dict(strict=True)` once its Lightning
`model.` prefix is removed (t2s_checkpoint.py). Sampling and the generation loop live in sampling.py and
t2s_generate.py; this module only computes logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

BERT_DIM = 1024  # width of the per-phone BERT features the GPT consumes (RoBERTa-large hidden size)


@dataclass(frozen=True)
class T2SConfig:
    """The model section of an official s1 config; defaults are the v2 pretrained GPT (s1longer-v2)."""

    hidden_dim: int = 512  # embeddings and transformer share one width (official embedding_dim = hidden_dim)
    heads: int = 16
    layers: int = 24
    phoneme_vocab_size: int = 732  # v2 symbol set; v1 checkpoints use 512
    vocab_size: int = 1025  # 1024 semantic codes + EOS
    eos: int = 1024
    # Dropout of the phone/code embeddings (the config's `dropout`, 0 in every official config).
    embedding_dropout: float = 0.0
    # Hard-wired to 0.1 in the official model: positional encodings, attention weights, both residual
    # branches and the feed-forward hidden layer. Active only in training mode.
    dropout: float = 0.1

    def __post_init__(self):
        if self.hidden_dim % self.heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by heads {self.heads}")
        if self.eos != self.vocab_size - 1:
            raise ValueError(f"EOS must be the last code (vocab_size - 1 = {self.vocab_size - 1}), got {self.eos}")

    @property
    def ffn_dim(self) -> int:
        return 4 * self.hidden_dim  # the official model ignores the config's linear_units and uses 4x

    @classmethod
    def from_official(cls, config: dict) -> "T2SConfig":
        """From an official s1 config dict (the `config` stored in every s1 checkpoint)."""
        model = config["model"]
        embedding_dim, hidden_dim = int(model["embedding_dim"]), int(model["hidden_dim"])
        if embedding_dim != hidden_dim:
            raise ValueError(f"embedding_dim {embedding_dim} differs from hidden_dim {hidden_dim}; the official "
                             "model concatenates both, so they must be equal")
        return cls(hidden_dim=hidden_dim, heads=int(model["head"]), layers=int(model["n_layer"]),
                   phoneme_vocab_size=int(model["phoneme_vocab_size"]), vocab_size=int(model["vocab_size"]),
                   eos=int(model["EOS"]), embedding_dropout=float(model.get("dropout", 0.0)))

    @classmethod
    def tiny(cls) -> "T2SConfig":
        """For golden tests: the full code vocabulary (so sampling is realistic), a tiny transformer."""
        return cls(hidden_dim=64, heads=4, layers=2, phoneme_vocab_size=40)


def sine_table(length: int, dim: int) -> torch.Tensor:
    """(length, dim) sinusoidal positions: sin on even channels, cos on odd ones, float32."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * inv_freq)
    table[:, 1::2] = torch.cos(position * inv_freq)
    return table


class TokenEmbedding(nn.Module):
    """An embedding table under the official name `word_embeddings`, with its (zero) dropout."""

    def __init__(self, vocab: int, dim: int, dropout: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.word_embeddings(ids))


class ScaledSinePosition(nn.Module):
    """Adds `alpha * sine_table[offset + i]` to position i; alpha is learned (checkpoint key `alpha`)."""

    TABLE_LENGTH = 4000  # initial table; extended on demand

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.ones(1))
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("table", sine_table(self.TABLE_LENGTH, dim), persistent=False)

    def positions(self, start: int, length: int) -> torch.Tensor:
        if start + length > self.table.shape[0]:
            self.table = sine_table(max(start + length, 2 * self.table.shape[0]), self.dim).to(self.table.device)
        return self.table[start:start + length]

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        pe = self.positions(offset, x.shape[1]).to(x.dtype)
        return self.dropout(x + self.alpha * pe)


class KVCache:
    """Keys and values of every layer, (batch, heads, capacity, head_dim), filled up to `length`.

    Preallocated so a decode step writes one slot instead of concatenating the whole cache; the
    capacity doubles when a generation runs past it."""

    def __init__(self, layers: int, batch: int, heads: int, head_dim: int, capacity: int, like: torch.Tensor):
        shape = (batch, heads, capacity, head_dim)
        self.keys: List[torch.Tensor] = [like.new_empty(shape) for _ in range(layers)]
        self.values: List[torch.Tensor] = [like.new_empty(shape) for _ in range(layers)]
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep (and reorder or repeat) batch rows by `index`; only the filled part is copied."""
        def pick(buf: torch.Tensor) -> torch.Tensor:
            out = buf.new_empty((index.numel(),) + buf.shape[1:])
            out[:, :, :self.length] = buf[:, :, :self.length].index_select(0, index)
            return out

        self.keys = [pick(k) for k in self.keys]
        self.values = [pick(v) for v in self.values]

    def reserve(self, total: int) -> None:
        if total <= self.capacity:
            return
        new_capacity = max(total, 2 * self.capacity)

        def grow(buf: torch.Tensor) -> torch.Tensor:
            out = buf.new_empty(buf.shape[:2] + (new_capacity,) + buf.shape[3:])
            out[:, :, :self.length] = buf[:, :, :self.length]
            return out

        self.keys = [grow(k) for k in self.keys]
        self.values = [grow(v) for v in self.values]


class SelfAttention(nn.Module):
    """Multi-head self-attention with the packed q/k/v projection of torch's MultiheadAttention."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = dropout
        nn.init.xavier_uniform_(self.in_proj_weight)

    def project_qkv(self, x: torch.Tensor) -> torch.Tensor:
        # A reduced-precision view of the model (t2s_precision.py) puts its own layer here.
        converted = self._modules.get("in_proj")
        if converted is not None:
            return converted(x)
        return F.linear(x, self.in_proj_weight, self.in_proj_bias)

    def forward(self, x: torch.Tensor, attend: Optional[torch.Tensor], cache: Optional[KVCache] = None,
                layer: int = 0) -> torch.Tensor:
        """x (B, L, D); attend: bool, True where a query may see a key, broadcastable to (B, H, L, S),
        or None for all. With a cache, x is appended after the `cache.length` positions already there."""
        batch, length, dim = x.shape
        q, k, v = (t.view(batch, length, self.heads, -1).transpose(1, 2)
                   for t in self.project_qkv(x).chunk(3, dim=-1))
        if cache is not None:
            start = cache.length
            cache.keys[layer][:, :, start:start + length] = k
            cache.values[layer][:, :, start:start + length] = v
            k = cache.keys[layer][:, :, :start + length]
            v = cache.values[layer][:, :, :start + length]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, dim))


class DecoderLayer(nn.Module):
    """Post-norm transformer layer: x = LN(x + attn(x)); x = LN(x + FFN(x)), FFN = Linear-ReLU-Linear."""

    def __init__(self, config: T2SConfig):
        super().__init__()
        dim = config.hidden_dim
        self.self_attn = SelfAttention(dim, config.heads, config.dropout)
        self.linear1 = nn.Linear(dim, config.ffn_dim)
        self.linear2 = nn.Linear(config.ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.dropout = nn.Dropout(config.dropout)  # inside the feed-forward block
        self.dropout1 = nn.Dropout(config.dropout)  # attention branch
        self.dropout2 = nn.Dropout(config.dropout)  # feed-forward branch

    def forward(self, x: torch.Tensor, attend: Optional[torch.Tensor], cache: Optional[KVCache] = None,
                layer: int = 0) -> torch.Tensor:
        x = self.norm1(x + self.dropout1(self.self_attn(x, attend, cache, layer)))
        ffn = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout2(ffn))


class _Layers(nn.Module):
    """Holds the layers under `h.layers.{i}` as in the official checkpoint."""

    def __init__(self, config: T2SConfig):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.layers))


def prefix_attention(text_length: int, code_length: int, device=None) -> torch.Tensor:
    """(L, L) bool, True = may attend, L = text_length + code_length: text sees text only, codes see
    all text and the codes up to themselves."""
    total = text_length + code_length
    attend = torch.ones(total, total, dtype=torch.bool, device=device).tril_()
    attend[:text_length, :text_length] = True
    return attend


class Text2SemanticModel(nn.Module):
    """The t2s decoder; see the module docstring for the computation and the key layout."""

    def __init__(self, config: T2SConfig):
        super().__init__()
        self.config = config
        dim = config.hidden_dim
        self.bert_proj = nn.Linear(BERT_DIM, dim)
        self.ar_text_embedding = TokenEmbedding(config.phoneme_vocab_size, dim, config.embedding_dropout)
        self.ar_text_position = ScaledSinePosition(dim, config.dropout)
        self.ar_audio_embedding = TokenEmbedding(config.vocab_size, dim, config.embedding_dropout)
        self.ar_audio_position = ScaledSinePosition(dim, config.dropout)
        self.h = _Layers(config)
        self.ar_predict_layer = nn.Linear(dim, config.vocab_size, bias=False)

    @property
    def layers(self) -> nn.ModuleList:
        return self.h.layers

    # -- embeddings -------------------------------------------------------------------------------
    def embed_text(self, phone_ids: torch.Tensor, bert_features: torch.Tensor) -> torch.Tensor:
        """phone_ids (B, T) and bert_features (B, 1024, T) -> (B, T, D)."""
        x = self.ar_text_embedding(phone_ids) + self.bert_proj(bert_features.transpose(1, 2))
        return self.ar_text_position(x)

    def embed_codes(self, codes: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """codes (B, S) at code positions offset..offset+S-1 -> (B, S, D)."""
        return self.ar_audio_position(self.ar_audio_embedding(codes), offset)

    # -- full sequence ----------------------------------------------------------------------------
    def run_layers(self, x: torch.Tensor, attend: Optional[torch.Tensor]) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, attend)
        return x

    def forward(self, phone_ids: torch.Tensor, bert_features: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Unpadded batch: phone_ids (B, T), bert_features (B, 1024, T), codes (B, S) (S may be 0).

        Returns logits (B, S + 1, vocab): row i predicts code i (row 0 from the last phone, the last
        row the code after `codes`)."""
        text = self.embed_text(phone_ids, bert_features)
        x = torch.cat([text, self.embed_codes(codes)], dim=1)
        hidden = self.run_layers(x, prefix_attention(text.shape[1], codes.shape[1], x.device))
        return self.ar_predict_layer(hidden[:, text.shape[1] - 1:])

    # -- kv-cache generation ----------------------------------------------------------------------
    def new_cache(self, batch: int, capacity: int, like: torch.Tensor) -> KVCache:
        c = self.config
        return KVCache(c.layers, batch, c.heads, c.hidden_dim // c.heads, capacity, like)

    def prefill(self, text: torch.Tensor, prompt: Optional[torch.Tensor], cache: KVCache) -> torch.Tensor:
        """Run the embedded text (B, T, D) and the prompt codes (B, P) or None into an empty cache.
        Returns the logits (B, vocab) for the first code after the prompt."""
        x = text if prompt is None else torch.cat([text, self.embed_codes(prompt)], dim=1)
        attend = prefix_attention(text.shape[1], x.shape[1] - text.shape[1], x.device)
        cache.reserve(x.shape[1])
        for index, layer in enumerate(self.layers):
            x = layer(x, attend, cache, index)
        cache.length = x.shape[1]
        return self.ar_predict_layer(x[:, -1])

    def decode_step(self, code: torch.Tensor, code_position: int, cache: KVCache) -> torch.Tensor:
        """Append one code (B,) at code position `code_position` (0 = first prompt code); it sees
        everything in the cache. Returns the logits (B, vocab) for the next code."""
        x = self.embed_codes(code.view(-1, 1), code_position)
        cache.reserve(cache.length + 1)
        for index, layer in enumerate(self.layers):
            x = layer(x, None, cache, index)
        cache.length += 1
        return self.ar_predict_layer(x[:, -1])
