"""LoRA adapters on TorToiSe's GPT-2 stack, through peft, and merging them back for synthesis.

The GPT blocks use GPT-2's `Conv1D` (a linear layer stored `[in, out]`), which peft supports only as
the transformers class. Our `Conv1D` keeps the official checkpoint keys, so instead of changing it we
register it with peft's custom-module hook, mapped to peft's own LoRA `Linear` in `fan_in_fan_out`
mode -- exactly what peft does for transformers' Conv1D. Adapters are injected in place
(`inject_adapter_in_model`), so parameter names stay the official ones plus peft's
`.base_layer` / `.lora_A.default` / `.lora_B.default` parts.

Targets: `LoraSpec.target_modules` are name fragments ("attn", "mlp", "c_attn", "c_proj", "c_fc")
matched against the layer names inside each GPT block (`attn.c_attn`, `attn.c_proj`, `mlp.c_fc`,
`mlp.c_proj`). Only those layers get adapters; embeddings, heads and the conditioning encoder stay
frozen. Tested with peft 0.21.

For synthesis the adapters are merged into plain weights (`merge_lora`): W[in, out] += (B @ A)^T *
alpha / rank, peft's own merge for fan_in_fan_out layers, so the inference model needs no peft.
"""

from __future__ import annotations

import warnings
from typing import Dict, List, Mapping

import torch

from voxmith.engines.base import LoraSpec
from voxmith.errors import VoxmithError

from .autoregressive import Conv1D, UnifiedVoice

ADAPTER = "default"  # peft's adapter name; part of the saved keys
LORA_KEY = ".lora_"  # what every adapter parameter name contains


def target_layers(ar: UnifiedVoice, fragments: tuple[str, ...]) -> List[str]:
    """Full names of the GPT-block Conv1D layers whose in-block name contains any fragment."""
    if not fragments:
        raise VoxmithError("LoRA needs at least one target module (e.g. attn, mlp).")
    layers = {name: name.split(".", 3)[3] for name, module in ar.named_modules()
              if isinstance(module, Conv1D) and name.startswith("gpt.h.")}
    chosen = [name for name, local in layers.items() if any(f in local for f in fragments)]
    unmatched = [f for f in fragments if not any(f in local for local in layers.values())]
    if unmatched:
        known = sorted({local for local in layers.values()})
        raise VoxmithError(f"LoRA target module(s) {', '.join(unmatched)} match no layer of the TorToiSe GPT; "
                           f"use fragments of {', '.join(known)} (e.g. attn, mlp).")
    return chosen


def add_lora(ar: UnifiedVoice, spec: LoraSpec) -> None:
    """Inject adapters (rank, alpha from `spec`) into `ar` in place; freeze everything else."""
    if spec.rank < 1 or spec.alpha <= 0:
        raise VoxmithError(f"LoRA rank must be at least 1 and alpha positive, got rank {spec.rank}, "
                           f"alpha {spec.alpha}.")
    from peft import LoraConfig, inject_adapter_in_model

    layers = target_layers(ar, tuple(spec.target_modules))
    config = LoraConfig(r=spec.rank, lora_alpha=spec.alpha, lora_dropout=0.0, target_modules=layers,
                        fan_in_fan_out=True, bias="none")
    if not hasattr(config, "_register_custom_module"):
        raise VoxmithError("LoRA for TorToiSe needs peft 0.21 or newer (custom-module support); "
                           "upgrade with 'pip install -U peft'.")
    config._register_custom_module({Conv1D: _conv1d_lora_class()})
    for param in ar.parameters():
        param.requires_grad_(False)
    with warnings.catch_warnings():
        # peft warns about every custom layer type; ours is registered on purpose (see above).
        warnings.filterwarnings("ignore", message="Unsupported layer type")
        inject_adapter_in_model(config, ar, adapter_name=ADAPTER)
    for name, param in ar.named_parameters():
        param.requires_grad_(LORA_KEY in name)


def _conv1d_lora_class():
    """peft's LoRA Linear for our Conv1D (built lazily: importing peft is slow)."""
    from peft.tuners.lora.layer import Linear

    class Conv1DLora(Linear):
        """peft's LoRA linear wrapped around a `[in, out]` Conv1D (fan_in_fan_out)."""

        def __init__(self, base_layer, adapter_name, **kwargs):
            kwargs["is_target_conv_1d_layer"] = True
            super().__init__(base_layer, adapter_name, **kwargs)

    return Conv1DLora


def adapter_state(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Only the adapter tensors of a state dict."""
    return {k: v for k, v in state.items() if LORA_KEY in k}


def merge_lora(ar: UnifiedVoice, adapters: Mapping[str, torch.Tensor], alpha: float) -> int:
    """Add adapters (keys `<layer>.lora_A.default.weight` / `lora_B`, relative to `ar`) into the plain
    Conv1D weights of `ar`; return the number of layers changed."""
    suffix_a = f".lora_A.{ADAPTER}.weight"
    layers = dict(ar.named_modules())
    merged = 0
    for key_a, down in adapters.items():
        if not key_a.endswith(suffix_a):
            continue
        name = key_a[:-len(suffix_a)]
        up = adapters.get(f"{name}.lora_B.{ADAPTER}.weight")
        layer = layers.get(name)
        if up is None or not isinstance(layer, Conv1D) or down.shape[1] != layer.weight.shape[0] or \
                up.shape[0] != layer.weight.shape[1]:
            raise VoxmithError(f"The fine-tuned adapters do not fit this TorToiSe model (layer {name}); "
                               "they were trained for another model size.")
        rank = down.shape[0]
        with torch.no_grad():
            delta = (up.to(layer.weight) @ down.to(layer.weight)).T * (alpha / rank)
            layer.weight.add_(delta)
        merged += 1
    if merged == 0:
        raise VoxmithError("The fine-tuned state holds no LoRA adapters.")
    return merged


__all__ = ["add_lora", "adapter_state", "merge_lora", "target_layers", "LORA_KEY"]
