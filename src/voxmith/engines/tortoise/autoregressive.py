"""UnifiedVoice: TorToiSe's autoregressive model (text + voice latent -> discrete mel codes).

A GPT-2 decoder runs over `[voice latent, text tokens, mel codes]`. The module provides
* `get_conditioning(mels)`: voice clips -> one conditioning latent per batch row,
* `inference_speech(...)`: sampling of mel codes with a kv-cache (our own loop reproducing the
  HuggingFace `generate` semantics the official code relies on, see `sample_codes`),
* `forward(..., return_latent=True)` / `latents(...)`: the "latent pass" feeding the diffusion decoder,
* `forward(..., return_latent=False)` / `training_losses(...)`: the official training objective (text and
  mel cross-entropy), which fine-tuning optimises.

Attribute names reproduce the official state_dict keys (GPT-2 weights under `gpt.h.{i}.*` in the HF
Conv1D layout, `[in, out]`), so the official checkpoint loads with `load_state_dict(strict=True)`;
the causal-mask buffers saved by older transformers (`attn.bias`, `attn.masked_bias`) are accepted
and ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint

from voxmith.engines.tortoise.blocks import AttentionBlock

# Buffers stored in the official checkpoint by older transformers versions; we build masks on the fly.
IGNORED_CHECKPOINT_SUFFIXES = ("attn.bias", "attn.masked_bias")


@dataclass(frozen=True)
class UnifiedVoiceConfig:
    """Constructor arguments; defaults are the official sizes as api.py passes them."""

    layers: int = 30
    model_dim: int = 1024
    heads: int = 16
    max_text_tokens: int = 402
    max_mel_tokens: int = 604
    max_conditioning_inputs: int = 2
    mel_length_compression: int = 1024
    number_text_tokens: int = 255
    types: int = 1
    start_text_token: int = 255
    stop_text_token: int = 0
    number_mel_codes: int = 8194
    start_mel_token: int = 8192
    stop_mel_token: int = 8193
    mel_channels: int = 80
    conditioning_blocks: int = 6
    # GPT-2's default dropout (embeddings, attention weights, both residual branches), which the
    # official model was trained with; active only in training mode, so inference is unaffected.
    dropout: float = 0.1

    @classmethod
    def tiny(cls) -> "UnifiedVoiceConfig":
        return cls(layers=2, model_dim=64, heads=2)


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's tanh-approximated GELU, written with the same operation order as transformers."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Conv1D(nn.Module):
    """GPT-2 "Conv1D": a linear layer whose weight is stored transposed, `[in, out]`."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.weight, std=0.02)

    # Read by peft to size LoRA adapters for this layer type (see lora.py).
    @property
    def in_features(self) -> int:
        return self.weight.shape[0]

    @property
    def out_features(self) -> int:
        return self.weight.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight)
        return out.view(*x.shape[:-1], self.weight.shape[1])


class KVCache:
    """Preallocated keys/values for every layer: (B, H, capacity, head_dim) each, filled up to `length`."""

    def __init__(self, layers: int, batch: int, heads: int, capacity: int, head_dim: int, like: torch.Tensor):
        shape = (batch, heads, capacity, head_dim)
        self.keys = [like.new_empty(shape) for _ in range(layers)]
        self.values = [like.new_empty(shape) for _ in range(layers)]
        self.length = 0

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep (and reorder/repeat) batch rows by `index`; only the filled part is copied."""
        def pick(buf: torch.Tensor) -> torch.Tensor:
            out = buf.new_empty((index.numel(),) + buf.shape[1:])
            out[:, :, :self.length] = buf[:, :, :self.length].index_select(0, index)
            return out

        self.keys = [pick(k) for k in self.keys]
        self.values = [pick(v) for v in self.values]


class GPT2Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.c_attn = Conv1D(dim, 3 * dim)
        self.c_proj = Conv1D(dim, dim)
        self.attn_dropout = nn.Dropout(dropout)
        self.resid_dropout = nn.Dropout(dropout)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # load_state_dict hands us its own copy of the dict, so dropping keys here is safe.
        for name in ("bias", "masked_bias"):
            state_dict.pop(prefix + name, None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = (self._split(t) for t in self.c_attn(x).split(dim, dim=2))
        past = 0
        if cache is not None:
            past = cache.length
            cache.keys[layer][:, :, past:past + length] = k
            cache.values[layer][:, :, past:past + length] = v
            k = cache.keys[layer][:, :, :past + length]
            v = cache.values[layer][:, :, :past + length]
            if length == 1 and not self.training:
                # One new query sees every cached key: the fused kernel reads the strided cache
                # slices once instead of materialising scores and weights (faster per decode step
                # at batch 16; equal to the unfused path up to float rounding).
                out = F.scaled_dot_product_attention(q, k, v)
                return self.resid_dropout(self.c_proj(out.permute(0, 2, 1, 3).reshape(batch, length, dim)))
        scores = torch.matmul(q, k.transpose(-1, -2)) / (self.head_dim ** 0.5)
        if length > 1:  # a single new query may see every key; otherwise mask the future
            total = past + length
            allowed = torch.ones(total, total, dtype=torch.bool, device=x.device).tril()[past:]
            scores = torch.where(allowed, scores, torch.finfo(scores.dtype).min)
        weights = self.attn_dropout(torch.softmax(scores, dim=-1).to(v.dtype))
        out = torch.matmul(weights, v).permute(0, 2, 1, 3).reshape(batch, length, dim)
        return self.resid_dropout(self.c_proj(out))


class GPT2MLP(nn.Module):
    def __init__(self, dim: int, dropout: float = 0.0):
        super().__init__()
        self.c_fc = Conv1D(dim, 4 * dim)
        self.c_proj = Conv1D(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(gelu_new(self.c_fc(x))))


class GPT2Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = GPT2Attention(dim, heads, dropout)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = GPT2MLP(dim, dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT2Stack(nn.Module):
    """GPT-2 body on input embeddings only: no token or position tables (UnifiedVoice adds its own)."""

    def __init__(self, layers: int, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(GPT2Block(dim, heads, dropout) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim, eps=1e-5)
        # Recompute each block's activations in the backward pass instead of keeping them: training
        # the full-size model on a GPU then fits far larger batches (DLAS trains with it on).
        self.checkpointing = False

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        recompute = self.checkpointing and cache is None and torch.is_grad_enabled()
        x = self.drop(x)
        for i, block in enumerate(self.h):
            if recompute:
                x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x, cache, i)
        if cache is not None:
            cache.length += x.shape[1]
        return self.ln_f(x)


class LearnedPositionEmbeddings(nn.Module):
    def __init__(self, length: int, dim: int):
        super().__init__()
        self.emb = nn.Embedding(length, dim)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, length: int, start: int = 0) -> torch.Tensor:
        """Rows start..start+length-1, shaped (length, dim) to broadcast over the batch."""
        return self.emb(torch.arange(start, start + length, device=self.emb.weight.device))


class ConditioningEncoder(nn.Module):
    """1x1 conv from mel channels, attention blocks, then the first time step (not a mean)."""

    def __init__(self, mel_channels: int, dim: int, blocks: int, heads: int):
        super().__init__()
        self.init = nn.Conv1d(mel_channels, dim, kernel_size=1)
        self.attn = nn.Sequential(*[AttentionBlock(dim, heads) for _ in range(blocks)])

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.attn(self.init(mel))[:, :, 0]


def warp_scores(scores: torch.Tensor, history: torch.Tensor | None, *, repetition_penalty: float,
                temperature: float, top_k: int | None, top_p: float) -> torch.Tensor:
    """HF-4.31 logits processing as `generate(do_sample=True)` applies it, in the same order:
    repetition penalty on every token id in `history` (B, n), temperature, top-k, top-p."""
    if history is not None and repetition_penalty != 1.0:
        picked = torch.gather(scores, 1, history)
        picked = torch.where(picked < 0, picked * repetition_penalty, picked / repetition_penalty)
        scores = scores.scatter(1, history, picked)  # repeated ids write the same value
    if temperature != 1.0:
        scores = scores / temperature
    if top_k:
        k = min(max(top_k, 1), scores.shape[-1])
        kth = torch.topk(scores, k)[0][..., -1, None]
        scores = scores.masked_fill(scores < kth, -float("inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        drop = sorted_scores.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
        drop[..., -1:] = False  # always keep the most likely token
        scores = scores.masked_fill(drop.scatter(1, order, drop), -float("inf"))
    return scores


class UnifiedVoice(nn.Module):
    def __init__(self, config: UnifiedVoiceConfig = UnifiedVoiceConfig()):
        super().__init__()
        c = self.config = config
        dim = c.model_dim
        self.conditioning_encoder = ConditioningEncoder(c.mel_channels, dim, c.conditioning_blocks, c.heads)
        self.text_embedding = nn.Embedding(c.number_text_tokens * c.types + 1, dim)
        self.mel_embedding = nn.Embedding(c.number_mel_codes, dim)
        self.gpt = GPT2Stack(c.layers, dim, c.heads, c.dropout)
        self.mel_pos_embedding = LearnedPositionEmbeddings(c.max_mel_tokens + 2 + c.max_conditioning_inputs, dim)
        self.text_pos_embedding = LearnedPositionEmbeddings(c.max_text_tokens + 2, dim)
        self.final_norm = nn.LayerNorm(dim)
        self.text_head = nn.Linear(dim, c.number_text_tokens * c.types + 1)  # training only; kept for the keys
        self.mel_head = nn.Linear(dim, c.number_mel_codes)

    # ---------------------------------------------------------------- conditioning
    def get_conditioning(self, mels: torch.Tensor) -> torch.Tensor:
        """mels (B, 80, S) or (B, clips, 80, S) -> (B, dim): each clip encoded, then the clip mean."""
        if mels.dim() == 3:
            mels = mels.unsqueeze(1)
        per_clip = [self.conditioning_encoder(mels[:, j]) for j in range(mels.shape[1])]
        return torch.stack(per_clip, dim=1).mean(dim=1)

    # ---------------------------------------------------------------- shared embedding helpers
    def _text_embeddings(self, text_tokens: torch.Tensor) -> torch.Tensor:
        """`[start_text, tokens..., stop_text]` embedded with text positions 0..n+1."""
        c = self.config
        text = F.pad(F.pad(text_tokens, (0, 1), value=c.stop_text_token), (1, 0), value=c.start_text_token)
        return self.text_embedding(text) + self.text_pos_embedding(text.shape[1])

    def _prompt(self, cond_latent: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
        """`[cond latent (no position), text embeddings]`: the prefix the sampler conditions on."""
        return torch.cat([cond_latent.unsqueeze(1), self._text_embeddings(text_tokens)], dim=1)

    # ---------------------------------------------------------------- full-sequence passes
    def stop_padded(self, mel_codes: torch.Tensor, wav_lengths: torch.Tensor | None) -> torch.Tensor:
        """Official `set_mel_padding` without the in-place write: codes from index
        `wav_length // 1024 + 1` on (past the audio's end, plus one code the convolutional DVAE
        still fills) become the stop token."""
        if wav_lengths is None:
            return mel_codes
        ends = torch.div(wav_lengths, self.config.mel_length_compression, rounding_mode="trunc") + 1
        past_end = torch.arange(mel_codes.shape[-1], device=mel_codes.device)[None] >= ends.to(mel_codes.device)[:, None]
        return mel_codes.masked_fill(past_end, self.config.stop_mel_token)

    def _hidden(self, cond_latent: torch.Tensor, text_tokens: torch.Tensor,
                codes: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """Final-normed GPT states over `[cond, start_text, text, stop_text, start_mel, codes, stop_mel]`
        with the cond position's output dropped; also the text and mel part lengths (n+2, m+2).
        Output i predicts input i+1, so the text part's outputs predict `[text, stop, stop]` and the
        mel part's `[codes, stop, stop]`."""
        c = self.config
        mel = F.pad(F.pad(codes, (0, 1), value=c.stop_mel_token), (1, 0), value=c.start_mel_token)
        mel_emb = self.mel_embedding(mel) + self.mel_pos_embedding(mel.shape[1])
        emb = torch.cat([self._prompt(cond_latent, text_tokens), mel_emb], dim=1)
        return self.final_norm(self.gpt(emb)[:, 1:]), text_tokens.shape[1] + 2, mel.shape[1]

    def latents(self, cond_latent: torch.Tensor, text_tokens: torch.Tensor, mel_codes: torch.Tensor,
                wav_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Final-normed GPT states aligned with `mel_codes`: (B, M, dim) for codes (B, M).

        Latent i is the state at the input token that predicts code i (the start token for i=0): the
        mel part of `_hidden` without its last two positions. Codes past each row's audio end
        (`wav_lengths`) become stop tokens first.
        """
        enc, _, n_mel = self._hidden(cond_latent, text_tokens, self.stop_padded(mel_codes, wav_lengths))
        return enc[:, -n_mel:][:, :-2]

    def training_losses(self, cond_latent: torch.Tensor, text_inputs: torch.Tensor, text_lengths: torch.Tensor,
                        mel_codes: torch.Tensor, wav_lengths: torch.Tensor, clip_inputs: bool = True
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The official training objective: (text cross-entropy, mel cross-entropy, mel logits
        (B, codes, M+2)).

        As officially: with `clip_inputs` the batch padding is cut to the longest text and to
        `max(wav_lengths) // 1024` codes; codes past each row's end become stop tokens; text padding
        (0 = the stop token) stays and counts in the text loss; both losses are means over every
        position of every row, padding included, and targets end with two stop tokens.
        """
        c = self.config
        if clip_inputs:
            text_inputs = text_inputs[:, :int(text_lengths.max())]
            mel_codes = mel_codes[:, :int(wav_lengths.max()) // c.mel_length_compression]
        codes = self.stop_padded(mel_codes, wav_lengths)
        enc, n_text, n_mel = self._hidden(cond_latent, text_inputs, codes)
        text_targets = F.pad(text_inputs, (0, 2), value=c.stop_text_token)
        mel_targets = F.pad(codes, (0, 2), value=c.stop_mel_token)
        text_logits = self.text_head(enc[:, :n_text]).permute(0, 2, 1)
        mel_logits = self.mel_head(enc[:, -n_mel:]).permute(0, 2, 1)
        loss_text = F.cross_entropy(text_logits, text_targets.long())
        loss_mel = F.cross_entropy(mel_logits, mel_targets.long())
        return loss_text, loss_mel, mel_logits

    def forward(self, speech_conditioning_latent: torch.Tensor, text_inputs: torch.Tensor,
                text_lengths: torch.Tensor, mel_codes: torch.Tensor, wav_lengths: torch.Tensor,
                return_latent: bool = False, clip_inputs: bool = True):
        """The official signature: the latent pass with `return_latent=True` (as api.py calls it, with
        clip_inputs=False), otherwise `training_losses`' (loss_text, loss_mel, mel_logits)."""
        if clip_inputs and return_latent:  # trim batch padding to the longest real input
            text_inputs = text_inputs[:, :int(text_lengths.max())]
            mel_codes = mel_codes[:, :int(wav_lengths.max()) // self.config.mel_length_compression]
        if return_latent:
            return self.latents(speech_conditioning_latent, text_inputs, mel_codes, wav_lengths)
        return self.training_losses(speech_conditioning_latent, text_inputs, text_lengths, mel_codes, wav_lengths,
                                    clip_inputs=clip_inputs)

    # ---------------------------------------------------------------- sampling
    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.mel_head(self.final_norm(hidden))

    @torch.no_grad()
    def inference_speech(self, speech_conditioning_latent: torch.Tensor, text_inputs: torch.Tensor,
                         num_return_sequences: int = 1, max_generate_length: int | None = None,
                         do_sample: bool = True, temperature: float = 1.0, top_k: int | None = 50,
                         top_p: float = 1.0, repetition_penalty: float = 1.0, length_penalty: float = 1.0,
                         official_positions: bool = False, generator: torch.Generator | None = None,
                         typical_sampling: bool = False, typical_mass: float = 0.9,
                         input_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Sample mel codes, (B*num_return_sequences, steps); rows that stopped are padded with the
        stop token, and the last row to finish ends with it (unless `max_generate_length` was hit).

        Reproduces HF-4.31 `generate` as the official code calls it: default top_k=50 stays active,
        the repetition penalty also covers the fake prompt ids (1 and start_mel), `length_penalty`
        has no effect, rows are expanded by repeat_interleave, finished rows keep drawing from
        `torch.multinomial` (one call over the whole batch per step, so the torch RNG advances exactly
        as in the official loop) and the loop ends when every row has produced the stop token or
        `max_generate_length` codes exist.

        Mel positions: the start token sits at mel position 0 and generated code c_j (j >= 1) is fed
        back at position j -- what the official no-cache path computes. The official kv-cache path
        (`kv_cache=True`, used by do_tts.py/read.py) feeds c_j at position j+1 instead, an off-by-one
        in its position lookup. `official_positions=True` reproduces that, giving the same codes as
        the official kv-cache run for the same seed; the default gives those of the no-cache run.

        Not implemented (off in api.py): `typical_sampling` and continuing from `input_tokens`.
        Greedy decoding (`do_sample=False`) applies only the repetition penalty, like HF.
        """
        del length_penalty, typical_mass  # length_penalty is beam-search only in HF: no effect
        if typical_sampling or input_tokens is not None:
            raise NotImplementedError("typical sampling and input_tokens continuation are not supported")
        c = self.config
        cond, text = speech_conditioning_latent, text_inputs
        if text.shape[0] != cond.shape[0]:
            raise ValueError("speech_conditioning_latent and text_inputs need the same batch size")
        steps = c.max_mel_tokens - 1 if max_generate_length is None else max_generate_length
        rows = cond.shape[0] * num_return_sequences

        # Step 0 runs [prompt, start_mel] once per distinct prompt; its cache and logits are identical
        # for the repeated rows, so they are copied instead of recomputed.
        start = torch.full((cond.shape[0], 1), c.start_mel_token, dtype=torch.long, device=cond.device)
        prompt = self._prompt(cond, text)
        emb = torch.cat([prompt, self.mel_embedding(start) + self.mel_pos_embedding(1)], dim=1)
        cache = KVCache(c.layers, cond.shape[0], c.heads, emb.shape[1] + steps, c.model_dim // c.heads, emb)
        logits = self._logits(self.gpt(emb, cache)[:, -1])
        expand = torch.arange(cond.shape[0], device=cond.device).repeat_interleave(num_return_sequences)
        cache.select_rows(expand)
        logits = logits.index_select(0, expand)

        # Token ids in each row for the repetition penalty, starting with the fake prompt ids (1s and
        # start_mel); one copy of each is enough. Only rows still generating are kept.
        history = torch.tensor([1, c.start_mel_token], device=cond.device).repeat(rows, 1)
        out = torch.full((rows, steps), c.stop_mel_token, dtype=torch.long, device=cond.device)
        active = torch.arange(rows, device=cond.device)  # rows still generating, in batch order
        position_shift = 1 if official_positions else 0
        for j in range(steps):
            scores = warp_scores(logits.float(), history, repetition_penalty=repetition_penalty,
                                 temperature=temperature if do_sample else 1.0,
                                 top_k=top_k if do_sample else None, top_p=top_p if do_sample else 1.0)
            if not do_sample:
                drawn = scores.argmax(dim=-1)
            elif active.numel() == rows:
                drawn = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator).squeeze(1)
            else:
                # Finished rows still take part in the draw (a one-hot stop distribution) so the RNG
                # advances as in the official full-batch call and active rows get the same results.
                probs = torch.zeros(rows, c.number_mel_codes, device=scores.device, dtype=scores.dtype)
                probs[:, c.stop_mel_token] = 1.0
                probs[active] = torch.softmax(scores, dim=-1)
                drawn = torch.multinomial(probs, 1, generator=generator).squeeze(1)[active]
            out[active, j] = drawn
            keep = drawn != c.stop_mel_token
            if not bool(keep.all()):
                index = keep.nonzero().squeeze(1)
                active, drawn, history = active[index], drawn[index], history[index]
                cache.select_rows(index)
            if active.numel() == 0 or j + 1 == steps:
                return out[:, :j + 1]
            history = torch.cat([history, drawn[:, None]], dim=1)
            # Feed c_{j+1} (1-based) at mel position j+1 (+1 in official kv-cache mode).
            pos = self.mel_pos_embedding(1, start=j + 1 + position_shift)
            x = (self.mel_embedding(drawn) + pos).unsqueeze(1)
            logits = self._logits(self.gpt(x, cache)[:, -1])
        return out[:, :0]  # steps == 0


__all__ = ["UnifiedVoiceConfig", "UnifiedVoice", "ConditioningEncoder", "GPT2Stack", "KVCache",
           "warp_scores", "gelu_new", "IGNORED_CHECKPOINT_SUFFIXES"]
