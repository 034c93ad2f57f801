"""Enrollment-time adaptation for piper-vc: the residual network trained on the voice's own clips.

Enrollment already builds parallel data (each clip, its Whisper transcript, joe saying the same
words: `parallel.ParallelUtterance`). Dataset fine-tuning (training.py) showed that the
zero-initialised residual network of postnet.py, trained on such data on top of the analytic
conversion, raises speaker similarity. Here the same network is trained on the enrollment's
utterances, with a fixed, small number of full-batch steps (every clip in every step: a voice
has a few clips, and a fixed step count keeps enrollment reproducible and its time bounded),
and its weights become conditioning arrays, so the studio caches them with the rest of the voice.

Not here: file I/O, the warp search and statistics (enrollment.py, conversion.py), synthesis
(engine.py), dataset fine-tuning runs (training.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from voxmith.engines.base import TORCH_RNG_LOCK
from voxmith.torch_threads import on_torch_threads
from voxmith.engines.piper_vc import conversion, postnet
from voxmith.engines.piper_vc.parallel import ParallelUtterance, align_utterance, collate, training_params
from voxmith.training.config import ScheduleConfig
from voxmith.training.loop import lr_factor

PREFIX = "postnet."  # conditioning keys of the network weights
ARCH_KEY = "postnet_arch"  # (hidden, layers, kernel)
SCALE_KEY = "postnet_scale"  # the scale the guard allowed; synthesis multiplies postnet_mix by it
# Network scales the intelligibility guard (guard.py) may leave, strongest first. No 1.5: checks
# let it through for voices it garbled (docs/piper_vc_tuning.md).
SCALE_GRID = (1.0, 0.5, 0.0)


@dataclass(frozen=True)
class AdaptConfig:
    """How the enrollment-time network is trained. Changing a default changes every voice's
    conditioning, so bump the engine's `version` with it. The defaults and the variants tried
    against them: docs/piper_vc_tuning.md."""

    steps: int = 150
    learning_rate: float = 1e-3  # peak; cosine decay to 0 over `steps`
    weight_decay: float = 0.01  # as the fine-tuning runs (training/optimizers.py)
    seed: int = 0  # initial weights; the batches are the whole set, so nothing else is random
    # Share of trained frames kept, dropping those whose aligned target is furthest from the
    # analytic conversion (meant for pairs DTW got wrong, e.g. around misheard names); all are
    # kept because dropping some did not help (docs/piper_vc_tuning.md).
    keep_quantile: float = 1.0
    check_intelligibility: bool = True  # the guard (guard.py) at enrollment
    # torch intra-op threads for the training steps. One: the network is small, so a second
    # thread mostly waits at each operator's barrier, and when the other core is busy (enrollment
    # makes the guard's takes meanwhile; other programs) the waiting spins: pat's 150 steps took
    # 10 CPU-s on one thread and 60-75 on two at load 8 (docs/piper_vc_tuning.md). The weights
    # differ from two threads' at float rounding (4e-6).
    threads: int = 1
    net: postnet.PostnetConfig = field(default_factory=postnet.PostnetConfig)


def aligned_lines(utterances: Sequence[ParallelUtterance], params: conversion.ConversionParams) -> list:
    """Network tensors for every utterance joe said (parallel.AlignedLine), aligned after the
    analytic conversion at the settings the network is trained on top of."""
    base = training_params(params)
    lines = [align_utterance(u.with_ap_bands(), base) for u in utterances if u.joe is not None]
    return [line for line in lines if line is not None and float(line.mask.sum()) > 0]


def train_residual(utterances: Sequence[ParallelUtterance], params: conversion.ConversionParams,
                   config: AdaptConfig = AdaptConfig(), progress=None) -> Optional[postnet.FinetunedConversion]:
    """Train the residual network on the voice's parallel utterances; None when there is nothing
    to learn from (no clip with a transcript joe could say)."""
    lines = aligned_lines(utterances, params)
    if not lines or config.steps <= 0:
        return None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper-vc-adapt") as pool:
        return pool.submit(on_torch_threads(config.threads, _train), lines, params, config, progress).result()


def _train(lines: list, params: conversion.ConversionParams, config: AdaptConfig,
           progress=None) -> postnet.FinetunedConversion:
    batch = collate(lines)
    if config.keep_quantile < 1.0:
        batch = drop_far_pairs(batch, config.keep_quantile)
    with TORCH_RNG_LOCK, torch.random.fork_rng():  # seeded initial weights; the caller's RNG untouched
        torch.manual_seed(config.seed)
        model = postnet.FinetunedConversion(params, config.net)
    optimizer = torch.optim.AdamW(model.net.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    # The training loop's cosine decay (no warm-up), over this fixed number of steps.
    cosine = ScheduleConfig(scheduler="cosine", warmup_steps=0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, cosine, steps_per_epoch=1, total_steps=config.steps))
    model.train()
    for step in range(config.steps):
        if progress is not None and step % 10 == 0:
            progress("adapting", step, config.steps)
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
        schedule.step()
    model.eval()
    if progress is not None:
        progress("adapting", config.steps, config.steps)
    return model


def drop_far_pairs(batch: Dict[str, torch.Tensor], keep_quantile: float) -> Dict[str, torch.Tensor]:
    """The batch with only the `keep_quantile` share of masked frames whose target is nearest to
    the network's input (mean squared distance of the standardised mel-cepstra) left in the mask."""
    dist = ((batch["inputs"][:, :postnet.MCEP_DIMS] - batch["target_z"]) ** 2).mean(dim=1)
    masked = batch["mask"] > 0
    if not masked.any():
        return batch
    limit = torch.quantile(dist[masked], keep_quantile)
    keep = (dist <= limit).to(batch["mask"].dtype)
    return {**batch, "mask": batch["mask"] * keep, "voiced_mask": batch["voiced_mask"] * keep}


def to_conditioning(model: postnet.FinetunedConversion) -> Dict[str, np.ndarray]:
    """The network's weights as float32 arrays (the conversion itself is already in "conv.*")."""
    out = {PREFIX + k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.net.state_dict().items()}
    c = model.config
    out[ARCH_KEY] = np.asarray([c.hidden, c.layers, c.kernel], dtype=np.int64)
    return out


def from_conditioning(conditioning: Dict[str, np.ndarray], params: conversion.ConversionParams
                      ) -> Optional[postnet.FinetunedConversion]:
    """The adapted network of a conditioning, on top of `params`; None if it has none."""
    if ARCH_KEY not in conditioning:
        return None
    hidden, layers, kernel = (int(v) for v in np.asarray(conditioning[ARCH_KEY]).tolist())
    model = postnet.FinetunedConversion(params, postnet.PostnetConfig(hidden=hidden, layers=layers, kernel=kernel),
                                        initialise=False)
    state = {k[len(PREFIX):]: torch.from_numpy(np.asarray(v, dtype=np.float32))
             for k, v in conditioning.items() if k.startswith(PREFIX)}
    model.net.load_state_dict(state)
    model.eval()
    return model


__all__: List[str] = ["AdaptConfig", "train_residual", "to_conditioning", "from_conditioning",
                      "aligned_lines"]
