"""Reduced-precision copies of the autoregressive model for sampling speech codes on the CPU.

Sampling one code at a time is a chain of matrix-vector products: at batch 1 every step reads all
~1.6 GB of the GPT's fp32 weights, so the CPU's memory bandwidth sets the speed. `decoder_for(ar,
precision)` returns a view of a `UnifiedVoice` whose 120 GPT linear layers read fewer bytes:

* ``int8``: weights rounded to int8 per output channel (symmetric); each call quantises its input on
  the fly (one range per call: per token at batch 1; 8-bit with AVX-512 VNNI, else 7-bit) and
  multiplies in integers (fbgemm's dynamic-quantised linear, x86 only). A quarter of the bytes.
* ``bfloat16``: weights stored in bf16, inputs cast to bf16 for the product; results go back to fp32.
* ``float32``: `ar` itself, untouched (bit-identical to the golden path).

Everything else stays fp32 and is shared with `ar` (no copy): embeddings, layer norms, attention
and the KV cache, the `mel_head` (the logits the sampler draws from), and the conditioning encoder.
The latent pass feeding the diffusion decoder keeps using the fp32 model. Checkpoints load as
before; the conversion happens at inference time and is redone when the weights change (see
`weights_signature`, e.g. after a fine-tune is swapped in).

How fast each is depends on the CPU's instruction set (VNNI for int8, AVX512-BF16/AMX for bf16) and on
torch's kernels for it, so `auto` decides from the detected features (`auto_cpu_precision`, the rule
and its measurements are in its docstring; figures in benchmarks/results/tortoise_speed.json, which
names the CPU they were measured on). The quality cost is measured by that benchmark's `ar_quality`
task on random full-size weights; it can be pointed at the real checkpoint.

`teacher_forced_logits` and `logit_agreement` measure how closely a converted decoder follows the
fp32 one along the same code sequence; the tests and `benchmarks/tortoise_speed.py` use them.
"""

from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn as nn

from voxmith.engines.device import CpuInfo, cpu_info
from voxmith.engines.precision import (LINEAR_TYPES, BFloat16Linear, Int8DynamicLinear,  # noqa: F401
                                     auto_cpu_precision, int8_supported, logit_agreement, shallow_tree,
                                     weights_signature)
from voxmith.errors import VoxmithError

from .autoregressive import Conv1D, KVCache, UnifiedVoice
from .presets import AR_PRECISIONS

AR_PRECISION_CHOICES = ("auto",) + AR_PRECISIONS


def resolve_ar_precision(requested: str, device: str | torch.device, cpu: CpuInfo | None = None) -> str:
    """`auto` -> `auto_cpu_precision` on a CPU (for `cpu`, default this machine's), fp32 elsewhere
    (CUDA has its own `half` switch). Explicit choices are checked against the device."""
    device = torch.device(device)
    if requested not in AR_PRECISION_CHOICES:
        raise VoxmithError(f"Setting 'ar_precision' must be one of {', '.join(AR_PRECISION_CHOICES)}, "
                           f"got {requested!r}.")
    if requested == "auto":
        if device.type != "cpu":
            return "float32"
        return auto_cpu_precision(cpu or cpu_info(), int8_supported())[0]
    if requested == "int8" and (device.type != "cpu" or not int8_supported()):
        where = "this torch build has no x86 (fbgemm) int8 kernels" if device.type == "cpu" else \
            f"it runs on the CPU only, not on {device.type}"
        raise VoxmithError(f"ar_precision=int8 is not available: {where}. Use ar_precision=float32 "
                           f"(or half=true on a GPU).")
    return requested


# ----------------------------------------------------------------------------------- layers


_LAYER_TYPES = LINEAR_TYPES


def _convert(layer: nn.Module, precision: str) -> nn.Module:
    if isinstance(layer, Conv1D):  # stored [in, out]
        return _LAYER_TYPES[precision](layer.weight.t(), layer.bias)
    if type(layer) is nn.Linear:  # exact type: adapters wrapping a Linear (LoRA) stay as they are
        return _LAYER_TYPES[precision](layer.weight, layer.bias)
    return layer


# ----------------------------------------------------------------------------------- the decoder


def decoder_for(ar: UnifiedVoice, precision: str, quantize_head: bool = False) -> UnifiedVoice:
    """`ar` itself for float32; otherwise a view of `ar` whose GPT linear layers (and the mel head
    when `quantize_head`) run at `precision`. Shares all other weights; always in eval mode."""
    if precision == "float32":
        return ar
    if precision not in _LAYER_TYPES:
        raise VoxmithError(f"ar_precision must be one of {', '.join(AR_PRECISIONS)}, got {precision!r}.")
    decoder = shallow_tree(ar).eval()
    with torch.no_grad():
        for block in decoder.gpt.h:
            for parent, names in ((block.attn, ("c_attn", "c_proj")), (block.mlp, ("c_fc", "c_proj"))):
                for name in names:
                    setattr(parent, name, _convert(getattr(parent, name), precision))
        if quantize_head:
            decoder.mel_head = _convert(decoder.mel_head, precision)
    return decoder


class DecoderCache:
    """Converted decoders of one AR model, rebuilt when its weights change (a fine-tune swapped in)."""

    def __init__(self) -> None:
        self._entries: Dict[str, Tuple[int, Tuple, UnifiedVoice]] = {}

    def get(self, ar: UnifiedVoice, precision: str) -> UnifiedVoice:
        if precision == "float32":
            return ar
        signature = weights_signature(ar)
        entry = self._entries.get(precision)
        if entry is None or entry[0] != id(ar) or entry[1] != signature:
            self._entries.pop(precision, None)  # free the old copy before building the new one
            entry = (id(ar), signature, decoder_for(ar, precision))
            self._entries[precision] = entry
        return entry[2]


# ----------------------------------------------------------------------------------- measuring


@torch.no_grad()
def teacher_forced_logits(ar: UnifiedVoice, cond_latent: torch.Tensor, text_tokens: torch.Tensor,
                          codes: torch.Tensor, official_positions: bool = False) -> torch.Tensor:
    """Next-code logits (steps, rows, vocab) while feeding the given `codes` (rows, steps) one step
    at a time through the KV cache, exactly as `inference_speech` feeds its own draws: logits[j]
    predict codes[:, j]. Rows share the prompt (cond (1, D), text (1, n))."""
    c = ar.config
    rows, steps = codes.shape
    start = torch.full((1, 1), c.start_mel_token, dtype=torch.long, device=cond_latent.device)
    emb = torch.cat([ar._prompt(cond_latent, text_tokens), ar.mel_embedding(start) + ar.mel_pos_embedding(1)], 1)
    cache = KVCache(c.layers, 1, c.heads, emb.shape[1] + steps, c.model_dim // c.heads, emb)
    logits = [ar._logits(ar.gpt(emb, cache)[:, -1]).expand(rows, -1)]
    cache.select_rows(torch.zeros(rows, dtype=torch.long, device=codes.device))
    shift = 1 if official_positions else 0
    for j in range(steps - 1):
        x = (ar.mel_embedding(codes[:, j]) + ar.mel_pos_embedding(1, start=j + 1 + shift)).unsqueeze(1)
        logits.append(ar._logits(ar.gpt(x, cache)[:, -1]))
    return torch.stack(logits).float()


__all__ = ["AR_PRECISIONS", "AR_PRECISION_CHOICES", "resolve_ar_precision", "auto_cpu_precision", "int8_supported", "decoder_for",
           "DecoderCache", "Int8DynamicLinear", "BFloat16Linear", "teacher_forced_logits", "logit_agreement",
           "weights_signature"]
