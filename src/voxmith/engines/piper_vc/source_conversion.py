"""Voice conversion of any speaker's recording toward an enrolled voice (`voxmith convert`).

The enrolled conversion maps *joe's* features to the target; a recording of someone else has other
spectral and pitch statistics, so joe's side of the model cannot be applied to it as is. Here the
source's side is measured on the recording itself: its mel-cepstral statistics (voiced and
unvoiced frames, after the frequency warp) and its log-F0 mean and spread replace joe's, while the
target's side (statistics, ridge correction, residual network) comes from the voice's conditioning.
Energy (c0), aperiodicity, timing and the F0 contour are the source's own, so the words, their
timing and the intonation stay; the pitch is moved into the target's range.

The warp (a vocal-tract-length-like formant shift) is searched per recording with enrollment's
search (`enrollment.search_warp`): speaker similarity to the target of a converted excerpt.

Not here: reading files, chunking long inputs at pauses, writing the result (studio/conversion.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from voxmith.engines.base import Conditioning, EngineSettings
from voxmith.engines.piper_vc import adaptation, conversion, postnet, world
from voxmith.engines.piper_vc.enrollment import search_warp
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report
from voxmith.speaker import cosine_similarity, get_speaker_encoder

# Seconds of the source's speech the warp search converts per warp tried (11 warps in all).
WARP_EXCERPT_S = 8.0


@dataclass
class PiperVCConvertSettings(EngineSettings):
    # Frequency warp (all-pass alpha shift) applied to the source; < -0.5 (default -1): searched
    # per recording for the highest similarity to the voice.
    warp: float = -1.0
    f0_scale: float = 1.0  # pitch multiplier on top of the mapping to the voice's range
    # Strength of the enrolled ridge correction (fitted on joe's mapped frames; it corrects
    # target-normalised frames, so it applies to another speaker's too).
    ridge_mix: float = 0.3
    # Strength of the residual network trained at enrollment (relative to the voice's own scale).
    postnet_mix: float = 0.0
    # Harvest F0 (slower, fewer voicing errors on real recordings) instead of DIO.
    accurate_f0: bool = True

    def validate(self) -> None:
        if not (-1.0 <= self.warp <= 0.5):
            raise VoxmithError(f"Setting 'warp' must be between -0.5 and 0.5 (or -1: search), got {self.warp}.")
        for name, low, high in (("f0_scale", 0.5, 2.0), ("ridge_mix", 0.0, 1.0), ("postnet_mix", 0.0, 2.0)):
            value = float(getattr(self, name))
            if not low <= value <= high:
                raise VoxmithError(f"Setting '{name}' must be between {low} and {high}, got {value}.")


def source_params(feats: world.WorldFeatures, target: conversion.ConversionParams, warp: float,
                  ridge_mix: float) -> conversion.ConversionParams:
    """The enrolled conversion with its source side measured on `feats` (the recording) at `warp`."""
    warped = world.WorldFeatures(feats.f0, world.warp_mcep(feats.mcep, warp), feats.ap)
    frames, voiced = conversion.frame_groups([warped])
    if voiced.sum() < 20 or (~voiced).sum() < 20:
        raise VoxmithError("The recording has too little speech to convert (fewer than 20 voiced or unvoiced "
                           "frames above the noise floor).")
    return dataclasses.replace(
        target, warp=float(warp),
        src_voiced=conversion.Stats.of(frames[voiced, 1:]), src_unvoiced=conversion.Stats.of(frames[~voiced, 1:]),
        src_lf0=conversion.log_f0_stats([feats]),
        ridge_mix=float(ridge_mix) if target.ridge.any() else 0.0,
        cov_mix=0.0, cov_nucleus=-1.0,  # the OT map needs both covariances; only the target's is stored
    )


class SourceConverter:
    """Converts chunks of one recording (mono float32 at `sample_rate_hz`) toward the voice."""

    sample_rate_hz = world.SAMPLE_RATE_HZ

    def __init__(self, params: conversion.ConversionParams, settings: PiperVCConvertSettings,
                 refiner: Optional[postnet.FinetunedConversion], refine_scale: float, details: Dict[str, Any]):
        self.params, self.settings = params, settings
        self.refiner, self.refine_scale = refiner, refine_scale
        self.details = details  # what was chosen for this recording, for the sidecar

    def features(self, samples: np.ndarray) -> world.WorldFeatures:
        return world.analyse(samples, accurate_f0=self.settings.accurate_f0)

    def convert_features(self, feats: world.WorldFeatures) -> np.ndarray:
        converted = conversion.convert(feats, self.params, f0_scale=float(self.settings.f0_scale))
        if self.refiner is not None:
            converted = postnet.refine(self.refiner, converted, self.params, scale=self.refine_scale)
        return world.synthesise(converted)

    def convert(self, samples: np.ndarray) -> np.ndarray:
        """The chunk in the voice, exactly as long as the input (timing kept sample for sample)."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.size < world.SAMPLE_RATE_HZ * world.FRAME_PERIOD_MS / 1000 * 4:
            return np.zeros_like(samples)
        feats = self.features(samples)
        if not feats.voiced.any():  # silence or noise only: nothing to convert
            return np.zeros_like(samples)
        out = self.convert_features(feats)
        out = np.pad(out, (0, max(0, samples.size - out.size)))[:samples.size]
        return out.astype(np.float32)


def fit_source(sample: np.ndarray, conditioning: Conditioning, settings: PiperVCConvertSettings,
               progress: Optional[ProgressCallback] = None) -> SourceConverter:
    """A converter for the recording `sample` is the start of (up to a minute or so of it)."""
    target = conversion.ConversionParams.from_arrays(conditioning, prefix="conv.")
    report(progress, "analysing the source speaker", 0, None)
    feats = world.analyse(np.asarray(sample, dtype=np.float32), accurate_f0=settings.accurate_f0)
    if feats.voiced.sum() < 20:
        raise VoxmithError("No voiced speech was found in the recording (is it silent, music or noise?).")
    refiner, refine_scale = None, 0.0
    enrolled_scale = float(settings.postnet_mix) * float(conditioning.get(adaptation.SCALE_KEY, 1.0))
    details: Dict[str, Any] = {}
    if float(settings.warp) >= -0.5:
        warp = float(settings.warp)
    else:
        warp, tried = _search_warp(feats, target, conditioning, settings, progress)
        details["warp_search"] = {f"{w:+.3f}": round(float(s), 4) for w, s in sorted(tried.items())}
    params = source_params(feats, target, warp, settings.ridge_mix)
    if enrolled_scale > 0 and adaptation.ARCH_KEY in conditioning:
        refiner, refine_scale = adaptation.from_conditioning(conditioning, params), enrolled_scale
    details.update({
        "warp": round(warp, 4),
        "source_f0_hz": round(float(np.exp(params.src_lf0.mean)), 1),
        "target_f0_hz": round(float(np.exp(params.tgt_lf0.mean)), 1),
        "postnet_scale": round(refine_scale, 3),
    })
    return SourceConverter(params, settings, refiner, refine_scale, details)


def _search_warp(feats: world.WorldFeatures, target: conversion.ConversionParams, conditioning: Conditioning,
                 settings: PiperVCConvertSettings, progress: Optional[ProgressCallback]):
    """enrollment.search_warp on an excerpt of the recording, scored by GE2E similarity to the voice."""
    frames = int(WARP_EXCERPT_S * 1000 / world.FRAME_PERIOD_MS)
    excerpt = world.WorldFeatures(feats.f0[:frames], feats.mcep[:frames], feats.ap[:frames])
    encoder = get_speaker_encoder("cpu")
    target_embedding = np.asarray(conditioning["target_embedding"])

    def score(warp: float) -> float:
        params = source_params(feats, target, warp, settings.ridge_mix)
        audio = world.synthesise(conversion.convert(excerpt, params, f0_scale=float(settings.f0_scale)))
        return cosine_similarity(encoder.embed(audio, world.SAMPLE_RATE_HZ), target_embedding)

    return search_warp(score, lambda done, total: report(progress, "choosing the warp", done, total))
