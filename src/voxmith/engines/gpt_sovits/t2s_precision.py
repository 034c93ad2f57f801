"""Reduced-precision views of the GPT-SoVITS GPT for generating semantic codes on the CPU.

Generating one code at a time is a chain of matrix-vector products: every step reads all of the
transformer's weights (about 300 MB in fp32 for the v2 model), so memory bandwidth sets the CPU
speed. `t2s_decoder_for(model, precision)` returns a view of a `Text2SemanticModel` whose 96
transformer linear layers (q/k/v, attention output, both feed-forward layers of each of the 24
layers) read fewer bytes; everything else (embeddings, BERT projection, layer norms, attention, the
KV cache and the output head the sampler reads) is shared with the fp32 model, untouched.

The layer types and the CPU rule are shared with the tortoise engine (`voxmith.engines.precision`):
``int8`` (weights int8 per output channel, inputs quantised per call by fbgemm; a quarter of the
bytes), ``bfloat16`` (half the bytes), ``float32`` (the model itself: bit-identical to the golden
path). ``auto`` picks int8 on x86 CPUs with fbgemm kernels, fp32 elsewhere (GPUs have their own
half-precision switch). What this costs in quality is measured by `benchmarks/gpt_sovits_t2s_speed.py`
(`quality` in its results: teacher-forced next-code distributions against fp32).
"""

from __future__ import annotations

from typing import Tuple

import torch

from voxmith.engines.device import CpuInfo, cpu_info
from voxmith.engines.gpt_sovits.t2s import Text2SemanticModel
from voxmith.engines.precision import LINEAR_TYPES, auto_cpu_precision, int8_supported, shallow_tree
from voxmith.errors import VoxmithError

T2S_PRECISIONS = ("float32", "int8", "bfloat16")
T2S_PRECISION_CHOICES = ("auto",) + T2S_PRECISIONS
_LAYER_TYPES = LINEAR_TYPES


def resolve_t2s_precision(requested: str, device: str | torch.device, cpu: CpuInfo | None = None) -> Tuple[str, str]:
    """(precision, why) for a requested setting on a device: `auto` is the CPU rule on a CPU and fp32
    elsewhere; int8 is refused where its kernels are missing."""
    device = torch.device(device)
    if requested not in T2S_PRECISION_CHOICES:
        raise VoxmithError(f"Setting 't2s_precision' must be one of {', '.join(T2S_PRECISION_CHOICES)}, "
                           f"got {requested!r}.")
    if requested == "auto":
        if device.type != "cpu":
            return "float32", f"{device.type}: fp32 (half precision is a separate switch there)"
        return auto_cpu_precision(cpu or cpu_info(), int8_supported())
    if requested == "int8" and (device.type != "cpu" or not int8_supported()):
        where = "this torch build has no x86 (fbgemm) int8 kernels" if device.type == "cpu" else \
            f"it runs on the CPU only, not on {device.type}"
        raise VoxmithError(f"t2s_precision=int8 is not available: {where}. Use t2s_precision=float32.")
    return requested, "requested"


@torch.no_grad()
def t2s_decoder_for(model: Text2SemanticModel, precision: str) -> Text2SemanticModel:
    """`model` itself for float32; otherwise an eval-mode view whose transformer linears run at
    `precision` (see the module docstring). Rebuild it after the model's weights change."""
    if precision == "float32":
        return model
    if precision not in _LAYER_TYPES:
        raise VoxmithError(f"t2s precision must be one of {', '.join(T2S_PRECISIONS)}, got {precision!r}.")
    layer_type = _LAYER_TYPES[precision]
    view = shallow_tree(model).eval()
    for layer in view.layers:
        attention = layer.self_attn
        attention.in_proj = layer_type(attention.in_proj_weight, attention.in_proj_bias)
        attention.out_proj = layer_type(attention.out_proj.weight, attention.out_proj.bias)
        layer.linear1 = layer_type(layer.linear1.weight, layer.linear1.bias)
        layer.linear2 = layer_type(layer.linear2.weight, layer.linear2.bias)
    return view
