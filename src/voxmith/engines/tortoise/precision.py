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

import warnings
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from voxmith.engines.device import CpuInfo, cpu_info
from voxmith.errors import VoxmithError

from .autoregressive import Conv1D, KVCache, UnifiedVoice
from .presets import AR_PRECISIONS

AR_PRECISION_CHOICES = ("auto",) + AR_PRECISIONS


def int8_supported() -> bool:
    """Whether this torch build has the x86 (fbgemm) dynamic-quantised linear kernels."""
    engines = getattr(torch.backends.quantized, "supported_engines", [])
    return hasattr(torch.ops.quantized, "linear_dynamic") and ("fbgemm" in engines or "x86" in engines)


def auto_cpu_precision(cpu: CpuInfo, int8_kernels: bool) -> Tuple[str, str]:
    """The AR sampling precision `auto` picks on a CPU with these features, and why.

    The rule follows the measurements (benchmarks/results/tortoise_speed.json and the issue-18 re-run
    on an AMD EPYC): per-step sampling reads every GPT weight, so fewer bytes per weight is faster
    wherever the kernels are not much worse, and fbgemm's int8 kernels were the fastest on both CPUs
    measured. On an AMX/AVX512-BF16/VNNI Xeon, per step against our fp32: int8 3.3x at batch 1 and 2.9x
    at batch 16, bf16 1.7x / 2.3x; on an AVX512-BF16/VNNI EPYC: int8 about 4x, bf16 2.2x. So native
    bf16 (even AMX) does not beat int8 and is not chosen; it is the explicit choice for a closer match
    (KL to fp32 ~0.0003 nats per code against int8's ~0.005 on random full-size weights). Without VNNI
    fbgemm cuts inputs to 7 bits (KL ~0.012) but still reads a quarter of the bytes; without fbgemm
    (non-x86, or a torch build lacking it) fp32 stays: nothing else was measured there.
    """
    x86 = cpu.has("avx2")
    if int8_kernels and x86 and cpu.has("avx512_vnni"):
        return "int8", "AVX-512 VNNI: int8 with 8-bit inputs, the fastest measured"
    if int8_kernels and x86:
        return "int8", "AVX2 without AVX-512 VNNI: int8 with 7-bit inputs (a quarter of fp32's bytes)"
    return "float32", "no x86 int8 kernels here: the fp32 model as official"


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


# fbgemm multiplies uint8 inputs by int8 weights. Without AVX-512 VNNI it sums pairs of products in
# saturating int16, so inputs must be cut to 7 bits (`reduce_range`); with VNNI the sums are int32 and
# the full 8 bits are safe. On the full-size model (random weights) 8-bit inputs halve the KL to fp32
# (0.0045 vs 0.012 nats per code) at the same speed.
REDUCE_RANGE = not cpu_info().has("avx512_vnni")


class Int8DynamicLinear(nn.Module):
    """A Conv1D/Linear with int8 weights (one scale per output channel) and inputs quantised per call.

    fbgemm's `linear_dynamic` takes one (min, max) range over the whole input: at batch 1 that is
    one range per token; at batch n the n rows share it.
    """

    def __init__(self, weight_out_in: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        weight = weight_out_in.detach().float().contiguous()
        self.in_features, self.out_features = weight.shape[1], weight.shape[0]
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        zero = torch.zeros(weight.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # quantised tensors are deprecated upstream; pinned torch has them
            warnings.simplefilter("ignore")
            qweight = torch.quantize_per_channel(weight, scale.double(), zero, 0, torch.qint8)
            self._packed = torch.ops.quantized.linear_prepack(qweight, bias.detach().float().contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.ops.quantized.linear_dynamic(x.reshape(-1, self.in_features), self._packed, REDUCE_RANGE)
        return out.view(*x.shape[:-1], self.out_features)


class BFloat16Linear(nn.Module):
    """A Conv1D/Linear with bf16 weights: the input is cast to bf16, the output back to fp32."""

    def __init__(self, weight_out_in: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight_out_in.detach().to(torch.bfloat16).contiguous())
        self.register_buffer("bias", bias.detach().to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(torch.bfloat16), self.weight, self.bias).to(x.dtype)


_LAYER_TYPES = {"int8": Int8DynamicLinear, "bfloat16": BFloat16Linear}


def _convert(layer: nn.Module, precision: str) -> nn.Module:
    if isinstance(layer, Conv1D):  # stored [in, out]
        return _LAYER_TYPES[precision](layer.weight.t(), layer.bias)
    if type(layer) is nn.Linear:  # exact type: adapters wrapping a Linear (LoRA) stay as they are
        return _LAYER_TYPES[precision](layer.weight, layer.bias)
    return layer


# ----------------------------------------------------------------------------------- the decoder


def _shallow_tree(module: nn.Module) -> nn.Module:
    """A copy of `module`'s module tree that shares every parameter and buffer tensor."""
    new = module.__class__.__new__(module.__class__)
    new.__dict__ = dict(module.__dict__)
    new._parameters = dict(module._parameters)
    new._buffers = dict(module._buffers)
    new._modules = {name: None if child is None else _shallow_tree(child) for name, child in module._modules.items()}
    return new


def weights_signature(model: nn.Module) -> Tuple:
    """Identity and in-place version of every parameter: it changes when weights are reloaded
    (`load_state_dict` copies in place and bumps versions; `assign=True` swaps the tensors)."""
    return tuple((id(p), p._version, p.device.type) for p in model.parameters())


def decoder_for(ar: UnifiedVoice, precision: str, quantize_head: bool = False) -> UnifiedVoice:
    """`ar` itself for float32; otherwise a view of `ar` whose GPT linear layers (and the mel head
    when `quantize_head`) run at `precision`. Shares all other weights; always in eval mode."""
    if precision == "float32":
        return ar
    if precision not in _LAYER_TYPES:
        raise VoxmithError(f"ar_precision must be one of {', '.join(AR_PRECISIONS)}, got {precision!r}.")
    decoder = _shallow_tree(ar).eval()
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


def logit_agreement(reference: torch.Tensor, other: torch.Tensor, temperature: float = 0.8,
                    top_p: float = 0.8) -> Dict[str, float]:
    """How closely `other` logits follow `reference` (same shape, last dim = vocabulary):
    top-1 agreement, mean and max KL(ref || other) of the softmax at `temperature` (nats), the
    probability mass `other` gives to the reference's top-p nucleus, and the largest logit error
    relative to the reference's logit spread (std)."""
    ref = reference.double().reshape(-1, reference.shape[-1])
    oth = other.double().reshape(-1, other.shape[-1])
    log_p = F.log_softmax(ref / temperature, dim=-1)
    log_q = F.log_softmax(oth / temperature, dim=-1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)
    sorted_p, order = log_p.exp().sort(dim=-1, descending=True)
    nucleus = (sorted_p.cumsum(-1) - sorted_p) < top_p  # the smallest set reaching top_p, as the sampler keeps
    q_mass = (log_q.exp().gather(-1, order) * nucleus).sum(-1)
    p_mass = (sorted_p * nucleus).sum(-1)
    return {"top1_agreement": float((ref.argmax(-1) == oth.argmax(-1)).double().mean()),
            "kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
            "nucleus_mass_ratio": float((q_mass / p_mass).mean()),
            "max_logit_error_rel": float(((ref - oth).abs().amax(-1) / ref.std(-1)).max())}


__all__ = ["AR_PRECISIONS", "AR_PRECISION_CHOICES", "resolve_ar_precision", "auto_cpu_precision", "int8_supported", "decoder_for",
           "DecoderCache", "Int8DynamicLinear", "BFloat16Linear", "teacher_forced_logits", "logit_agreement",
           "weights_signature"]
