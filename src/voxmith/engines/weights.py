"""The content fingerprint of a model's weights, shared by engines: caches of what a model
computes (TorToiSe's DVAE codes, sv2tts' ground-truth-aligned mels, an in-memory encoder's voice
embeddings) are keyed by it, so other weights never read another model's entries.

Not here: `precision.weights_signature`, which tells whether the same tensors were reloaded in
place (identity, cheap) rather than what they hold."""

from __future__ import annotations

import hashlib

import torch


def state_fingerprint(module: torch.nn.Module) -> str:
    """sha256 (hex) of every state-dict entry's name and values, in name order. Values are read as
    float32, which holds every bf16/fp16 weight and integer buffer exactly (numpy has no bf16)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


__all__ = ["state_fingerprint"]
