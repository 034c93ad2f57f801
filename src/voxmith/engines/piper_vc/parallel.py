"""Parallel data for piper-vc: a recording of the target and joe saying the same words, aligned.

Enrollment (the voice's clips), its residual network (adaptation.py) and dataset fine-tuning
(training.py) all learn from the same unit, a `ParallelUtterance`; this module makes one from a
clip and its transcript, and turns it into the network's aligned tensors (`AlignedLine`).

Not here: choosing the conversion (enrollment.py, conversion.py), caching (training.py), training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from voxmith.audio import peak_normalize, resample, trim_bounds, trim_silence
from voxmith.engines.piper_vc import conversion, phone_shift, postnet, world
from voxmith.engines.piper_vc.base_voice import get_base_voice

# The analytic conversion the residual network is trained on top of: the synthesis defaults
# (PiperVCSettings: ridge_mix 0.3, cov_mix 0, cov_nucleus 0). Other settings at synthesis still
# work, but move the network's inputs away from what it saw.
TRAIN_RIDGE_MIX = 0.3
TRAIN_COV_MIX = 0.0


def prepare_clip(samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Mono float32 at 22.05 kHz, leading/trailing silence trimmed, peak at -1 dBFS."""
    x = resample(np.asarray(samples, dtype=np.float32), sample_rate_hz, world.SAMPLE_RATE_HZ)
    x = trim_silence(x, world.SAMPLE_RATE_HZ)
    return peak_normalize(x, -1.0)


def dtw_path(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """For each source frame, the aligned target frame. Step pattern: per source frame the
    target advances 0, 1 or 2 frames (so the target may be up to 2x longer), which makes each
    row a vectorised update. Features are mean-normalised per utterance (channel-independent)."""
    a = src - src.mean(axis=0)
    b = tgt - tgt.mean(axis=0)
    cost = np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0))
    n, m = cost.shape
    acc = np.full((n, m), np.inf)
    back = np.zeros((n, m), np.int8)
    acc[0, 0] = cost[0, 0]
    for i in range(1, n):
        prev = acc[i - 1]
        options = np.stack([prev, np.r_[np.inf, prev[:-1]], np.r_[np.inf, np.inf, prev[:-2]]])
        step = options.argmin(axis=0)
        acc[i] = cost[i] + options[step, np.arange(m)]
        back[i] = step
    path = np.zeros(n, np.int64)
    j = m - 1 if np.isfinite(acc[-1, -1]) else int(np.argmin(acc[-1]))
    for i in range(n - 1, -1, -1):
        path[i] = j
        j -= int(back[i, j])
    return np.clip(path, 0, m - 1)


@dataclass
class ParallelUtterance:
    """One target clip and joe saying its words: the unit of parallel data."""

    # Both sides are analysed from trimmed audio, so their frame counts compare durations (the
    # speaking rate, rate.py).
    target: world.WorldFeatures  # Harvest F0: the target side of every map
    text: str
    joe: Optional[world.WorldFeatures] = None  # None when the transcript is too short to say
    path: Optional[np.ndarray] = None  # path[i] = target frame aligned to joe frame i
    # Piper's phone at each of joe's frames (phone_shift.frame_phones); None without timings.
    labels: Optional[np.ndarray] = None

    def with_ap_bands(self) -> "ParallelUtterance":
        """This utterance with aperiodicity as postnet bands (what `align_utterance` expects;
        training.py caches utterances that way)."""
        band = lambda f: world.WorldFeatures(f.f0, f.mcep, postnet.ap_bands_db(f.ap))  # noqa: E731
        return ParallelUtterance(band(self.target), self.text, band(self.joe) if self.joe is not None else None,
                                 self.path, self.labels)


def parallel_utterance(prepared: np.ndarray, text: str, voice=None,
                       target: Optional[world.WorldFeatures] = None) -> ParallelUtterance:
    """Analyse a prepared clip (see prepare_clip; `target`: its analysis, if already made) and let
    joe say `text` for it."""
    voice = voice or get_base_voice()
    tf = world.analyse(prepared, accurate_f0=True) if target is None else target
    if len(text.split()) < 2:
        return ParallelUtterance(tf, text)  # nothing usable to say; still counts for statistics
    said = voice.speak(text, seed=0)
    start, end = trim_bounds(said.samples, world.SAMPLE_RATE_HZ)  # trim_silence's cut
    joe = world.analyse(said.samples[start:end])
    labels = phone_shift.frame_phones(said.alignment, joe.f0.size, world.SAMPLE_RATE_HZ, world.FRAME_PERIOD_MS,
                                      offset=start)
    return ParallelUtterance(tf, text, joe, dtw_path(joe.mcep[:, 1:], tf.mcep[:, 1:]), labels)


def training_params(base: conversion.ConversionParams) -> conversion.ConversionParams:
    """The base conversion at the settings the network is trained on top of."""
    p = conversion.ConversionParams.from_arrays(base.to_arrays())
    p.ridge_mix = TRAIN_RIDGE_MIX if p.ridge.any() else 0.0
    p.cov_mix = TRAIN_COV_MIX
    p.cov_nucleus = 0.0
    return p


@dataclass
class AlignedLine:
    """Network tensors for one utterance (joe's frames; targets picked by the alignment)."""

    inputs: torch.Tensor  # (C, T)
    speech: torch.Tensor  # (T,)
    target_z: torch.Tensor  # (D, T)
    target_ap_db: torch.Tensor  # (AP_BANDS, T)
    mask: torch.Tensor  # (T,)
    voiced_mask: torch.Tensor  # (T,)


def align_utterance(u: ParallelUtterance, params: conversion.ConversionParams) -> Optional[AlignedLine]:
    """Joe's converted frames and the target frames DTW puts against them (None without joe).
    `u` carries aperiodicity bands (`ParallelUtterance.with_ap_bands`); `params` are the
    `training_params` of the base conversion."""
    if u.joe is None:
        return None
    converted = conversion.convert(u.joe, params)  # passes joe's ap bands through
    tgt = u.target
    # Realign on the converted features: they are close to the target's, so DTW errs less than on
    # joe's raw frames (enrollment's path).
    path = dtw_path(converted.mcep[:, 1:], tgt.mcep[:, 1:])
    speech = postnet.speech_frames(converted.mcep)
    agree = converted.voiced == tgt.voiced[path]
    mask = speech & postnet.speech_frames(tgt.mcep)[path] & agree
    target_z = (tgt.mcep[path, 1:] - params.tgt_voiced.mean) / params.tgt_voiced.std
    as_tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))  # noqa: E731
    return AlignedLine(
        inputs=torch.from_numpy(postnet.net_inputs(converted.mcep, converted.voiced, converted.ap, params)),
        speech=as_tensor(speech), target_z=as_tensor(target_z.T), target_ap_db=as_tensor(tgt.ap[path].T),
        mask=as_tensor(mask), voiced_mask=as_tensor(mask & converted.voiced))


def collate(lines: Sequence[AlignedLine]) -> Dict[str, torch.Tensor]:
    """Pad lines to the longest; padding has mask 0 and speech 0, so it neither trains nor counts."""
    longest = max(line.speech.shape[0] for line in lines)

    def stack(name: str) -> torch.Tensor:
        items = [getattr(line, name) for line in lines]
        return torch.stack([torch.nn.functional.pad(x, (0, longest - x.shape[-1])) for x in items])

    return {name: stack(name) for name in ("inputs", "speech", "target_z", "target_ap_db", "mask", "voiced_mask")}


__all__ = ["AlignedLine", "ParallelUtterance", "TRAIN_COV_MIX", "TRAIN_RIDGE_MIX", "align_utterance", "collate",
           "dtw_path", "parallel_utterance", "prepare_clip", "training_params"]
