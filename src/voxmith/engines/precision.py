"""Reduced-precision linear layers for sampling codes one at a time on the CPU, shared by engines.

Autoregressive samplers (TorToiSe's GPT, GPT-SoVITS's t2s) read every weight of their transformer at
each step, so memory bandwidth sets their CPU speed and fewer bytes per weight is faster. This module
holds what does not depend on a model: the int8 (fbgemm dynamic-quantised) and bf16 layer types, the
CPU rule `auto` follows, a shallow module copy that shares tensors (for views of a model whose
linears are swapped) and the measure of how closely a reduced-precision model follows fp32. Each
engine decides which of its layers to convert (`tortoise.precision`, `gpt_sovits.t2s_precision`).
"""

from __future__ import annotations

import warnings
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from voxmith.engines.device import CpuInfo, cpu_info


def int8_supported() -> bool:
    """Whether this torch build has the x86 (fbgemm) dynamic-quantised linear kernels."""
    engines = getattr(torch.backends.quantized, "supported_engines", [])
    return hasattr(torch.ops.quantized, "linear_dynamic") and ("fbgemm" in engines or "x86" in engines)


def auto_cpu_precision(cpu: CpuInfo, int8_kernels: bool) -> Tuple[str, str]:
    """The precision `auto` picks for sampling codes on a CPU with these features, and why.

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

LINEAR_TYPES = {"int8": Int8DynamicLinear, "bfloat16": BFloat16Linear}


def shallow_tree(module: nn.Module) -> nn.Module:
    """A copy of `module`'s module tree that shares every parameter and buffer tensor."""
    new = module.__class__.__new__(module.__class__)
    new.__dict__ = dict(module.__dict__)
    new._parameters = dict(module._parameters)
    new._buffers = dict(module._buffers)
    new._modules = {name: None if child is None else shallow_tree(child) for name, child in module._modules.items()}
    return new


def weights_signature(model: nn.Module) -> Tuple:
    """Identity and in-place version of every parameter: it changes when weights are reloaded
    (`load_state_dict` copies in place and bumps versions; `assign=True` swaps the tensors)."""
    return tuple((id(p), p._version, p.device.type) for p in model.parameters())


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
