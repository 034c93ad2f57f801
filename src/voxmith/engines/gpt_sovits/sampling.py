"""How the GPT-SoVITS GPT picks the next semantic code from its logits, in the official order.

1. repetition penalty on every code already in the sequence (reference prompt included): a negative
   logit is multiplied by the penalty, a positive one divided by it (each code once, however often
   it occurred);
2. top-p: codes sorted by probability are dropped once the cumulative probability exceeds top_p
   (the most likely code is always kept; unlike the usual nucleus rule, the code that crosses the
   threshold is dropped too);
3. temperature (clamped to at least 1e-5);
4. top-k: logits below the k-th largest are dropped;
5. softmax, then one draw by the exponential-noise trick: argmax(p / q) with q ~ Exp(1), which picks
   code i with probability p_i.

The noise comes from the `torch.Generator` the caller passes, never from the global RNG, so a seed
gives the same codes on every run and concurrent generations do not disturb each other. A CPU
generator seeded with s draws exactly what the official code draws after `torch.manual_seed(s)` on
the CPU; the noise is drawn on the generator's device and moved to the logits', so a CPU generator
also gives the same draws when the model runs on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from voxmith.errors import VoxmithError

MIN_TEMPERATURE = 1e-5  # the official clamp: temperature 0 means (almost) greedy, not a division by zero


@dataclass(frozen=True)
class SamplingSettings:
    """Official defaults (api_v2 / TTS.py): top_k 15, top_p 1 (off), temperature 1, penalty 1.35."""

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35

    def __post_init__(self):
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise VoxmithError(f"top_k must be a whole number of at least 1 (the official default is 15), "
                               f"got {self.top_k!r}.")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise VoxmithError(f"top_p must be above 0 and at most 1 (1 turns it off), got {self.top_p!r}.")
        if not float(self.temperature) >= 0.0:
            raise VoxmithError(f"temperature must be 0 or more (1 leaves the logits as they are), "
                               f"got {self.temperature!r}.")
        if not float(self.repetition_penalty) > 0.0:
            raise VoxmithError(f"repetition_penalty must be above 0 (1 turns it off; the official default is "
                               f"1.35), got {self.repetition_penalty!r}.")


def penalize_repetition(logits: torch.Tensor, previous: Optional[torch.Tensor], penalty: float) -> torch.Tensor:
    """logits (B, V), previous (B, N) codes: a new tensor with the penalty applied to those codes.

    The official code applies it in place and then also tests argmax == EOS on the penalised
    logits, which is why the generation loop asks for them separately."""
    if previous is None or previous.numel() == 0 or penalty == 1.0:
        return logits
    index = previous.long()
    score = logits.gather(1, index)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return logits.scatter(1, index, score)


def filtered_probs(logits: torch.Tensor, settings: SamplingSettings) -> torch.Tensor:
    """Steps 2-5 up to the softmax: top-p, temperature, top-k on (already penalised) logits (B, V)."""
    if settings.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative > settings.top_p
        drop_sorted[:, 0] = False
        drop = drop_sorted.scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    logits = logits / max(float(settings.temperature), MIN_TEMPERATURE)
    k = min(settings.top_k, logits.shape[-1])
    pivot = torch.topk(logits, k).values[:, -1:]
    logits = torch.where(logits < pivot, float("-inf"), logits)
    return logits.softmax(dim=-1)


def exponential_noise(shape: tuple, generator: Optional[torch.Generator], like: torch.Tensor) -> torch.Tensor:
    device = generator.device if generator is not None else like.device
    noise = torch.empty(shape, dtype=like.dtype, device=device).exponential_(1, generator=generator)
    return noise.to(like.device)


def draw(probs: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """One code per row of probs (B, V) -> (B, 1) long, by argmax(p / Exp(1) noise); one noise
    tensor for the whole batch, as the official code draws it."""
    return torch.argmax(probs / exponential_noise(tuple(probs.shape), generator, probs), dim=-1, keepdim=True)


def draw_rows(probs: torch.Tensor, generators: Sequence[Optional[torch.Generator]]) -> torch.Tensor:
    """Like `draw`, but row i's noise comes from generators[i]: each row draws exactly what a batch-1
    run with that generator draws, whatever else is in the batch."""
    if len(generators) == 1:
        return draw(probs, generators[0])
    noise = torch.cat([exponential_noise((1, probs.shape[1]), g, probs) for g in generators])
    return torch.argmax(probs / noise, dim=-1, keepdim=True)


def sample_next(logits: torch.Tensor, previous: Optional[torch.Tensor], settings: SamplingSettings,
                generators: Sequence[Optional[torch.Generator]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole official step with one generator per row: returns (codes (B, 1), penalised logits
    (B, V)). The penalised logits are what the official stop test (argmax == EOS) looks at."""
    penalised = penalize_repetition(logits, previous, float(settings.repetition_penalty))
    return draw_rows(filtered_probs(penalised, settings), generators), penalised
