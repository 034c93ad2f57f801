"""The optimizers a training run can use: AdamW (default) or bitsandbytes' 8-bit AdamW on CUDA.

8-bit AdamW keeps the optimizer's two moment buffers in 8 bits instead of 32, which saves about
three quarters of their memory on the GPU; bitsandbytes implements it for CUDA only, and it is an
optional dependency (`voxmith[cuda]`), so `optimizer_problems` explains in words what is missing.
"""

from __future__ import annotations

import importlib.util
from typing import Iterable, Union

import torch

from voxmith.errors import VoxmithError

OPTIMIZERS = ("adamw", "adamw8bit")
WEIGHT_DECAY = 0.01  # AdamW's default in the DLAS/ai-voice-cloning fine-tuning recipes


def optimizer_problems(name: str, device: Union[str, torch.device, None] = None) -> list[str]:
    """Why optimizer `name` cannot train on `device` (None: the best device here), in plain words."""
    if name not in OPTIMIZERS:
        return [f"optimizer '{name}' is unknown; use {' or '.join(OPTIMIZERS)}."]
    if name != "adamw8bit":
        return []
    problems = []
    if importlib.util.find_spec("bitsandbytes") is None:
        problems.append("optimizer adamw8bit needs the bitsandbytes package, which is not installed; "
                        "install voxmith[cuda] (pip install 'voxmith[cuda]') or use optimizer: adamw.")
    if device is None:
        if not torch.cuda.is_available():
            problems.append("optimizer adamw8bit runs only on a CUDA GPU, and this machine's torch sees none; "
                            "use optimizer: adamw.")
    elif torch.device(device).type != "cuda":
        problems.append(f"optimizer adamw8bit runs only on a CUDA GPU, but this run trains on "
                        f"{torch.device(device)}; use optimizer: adamw or train on a GPU.")
    return problems


def build_optimizer(params: Iterable, name: str, learning_rate: float, device: torch.device,
                    betas: tuple = (0.9, 0.999), eps: float = 1e-8,
                    weight_decay: float = WEIGHT_DECAY) -> torch.optim.Optimizer:
    """AdamW over `params` (parameters, or torch parameter groups with their own "lr").
    `weight_decay` 0 makes it plain Adam (a task whose official recipe uses Adam asks for that)."""
    problems = optimizer_problems(name, device)
    if problems:
        raise VoxmithError(" ".join(p[0].upper() + p[1:] for p in problems))
    if name == "adamw8bit":
        try:
            import bitsandbytes  # optional: only the cuda extra installs it
        except ImportError as err:  # installed but broken, e.g. no matching CUDA libraries
            raise VoxmithError(f"bitsandbytes is installed but cannot be loaded ({err}); reinstall "
                               "voxmith[cuda] for this machine's CUDA, or use optimizer: adamw.") from None
        return bitsandbytes.optim.AdamW8bit(params, lr=learning_rate, betas=tuple(betas), eps=eps,
                                            weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=learning_rate, betas=tuple(betas), eps=eps, weight_decay=weight_decay)

