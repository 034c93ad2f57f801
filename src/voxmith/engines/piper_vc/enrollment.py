"""Enrollment for piper-vc: learn the conversion from a few clips of the target speaker.

Steps: (1) clean and analyse the target clips with WORLD (Harvest F0); (2) transcribe each clip
with Whisper and let joe say the same words, giving parallel utterances; (3) DTW-align joe's
frames to the target's; (4) pick the frequency-warp factor that maximises GE2E similarity
between converted calibration sentences and the target clips; (5) fit the statistics mapping
and the ridge correction at that warp (conversion.fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from voxmith.audio import peak_normalize, resample, trim_silence
from voxmith.engines.piper_vc import conversion, phones, world
from voxmith.engines.piper_vc.base_voice import get_base_voice

# Short, phonetically varied sentences joe says during the warp search; fixed so enrollment is
# reproducible. Two keep the search at a few seconds on 2 cores.
CALIBRATION_SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sells seashells by the seashore, and I would like a cup of coffee.",
)
# Coarse grid over +-0.3 (female targets from male joe needed +0.2 or more), then two
# refinements around the best point: 7 + 2 + 2 syntheses instead of 25 for a 0.025 grid.
WARP_GRID = (-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3)
WARP_REFINE = ((-0.05, 0.05), (-0.025, 0.025))
# Speaking-rate match (target duration / joe duration for the same words) is clipped to this
# range: beyond it the DTW pairs are probably misaligned or the transcript is poor.
RATE_RANGE = (0.9, 1.2)
# Warps whose calibration SECS is within this of the best count as ties; the smallest |warp|
# among them wins, because larger warps cost intelligibility (daniel: WER 20-38% at -0.15).
WARP_TIE_SECS = 0.01
# OT weights tried on vowel nuclei (phone-aware map), strongest first; the strongest whose
# calibration word errors are within NUCLEUS_WER_TOL of the weakest (0 = no OT) is kept.
# 8 voices at 1: SECS +.02, but daniel's WER doubles, hence the per-voice check.
NUCLEUS_GRID = (1.0, 0.5, 0.0)
NUCLEUS_WER_TOL = 1


def transcribe_clip(samples: np.ndarray, sample_rate_hz: int) -> str:
    """English transcript of one clip, from the studio's shared Whisper model (loaded once)."""
    from voxmith.asr import get_transcriber

    return get_transcriber().transcribe(samples, sample_rate_hz, language="en").text


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
class EnrollmentResult:
    params: conversion.ConversionParams
    target_embedding: np.ndarray
    warp_grid: np.ndarray  # warps tried (in order)
    warp_scores: np.ndarray  # calibration SECS for each
    rate: float  # target/joe duration ratio for the same words: Piper's length_scale multiplier
    transcripts: List[str] = field(default_factory=list)
    # The analysed parallel data, kept so the engine can train its residual network on it
    # (adaptation.py) without analysing the clips again; not part of the conditioning.
    utterances: List["ParallelUtterance"] = field(default_factory=list)
    # Joe's analysed CALIBRATION_SENTENCES, for checks of the finished conversion (adaptation.py).
    calibration: List[world.WorldFeatures] = field(default_factory=list)


def _secs(feats: Sequence[world.WorldFeatures], params: conversion.ConversionParams,
          encoder, target_embedding: np.ndarray) -> float:
    from voxmith.speaker import cosine_similarity

    audio = np.concatenate([world.synthesise(conversion.convert(f, params)) for f in feats])
    return cosine_similarity(encoder.embed(audio, world.SAMPLE_RATE_HZ), target_embedding)


def _word_errors(ref: str, hyp: str) -> int:
    from voxmith.text import word_error_rate

    errors = word_error_rate(ref, hyp)
    return errors.substitutions + errors.deletions + errors.insertions


def _choose_nucleus(calib, calib_nuc, params: conversion.ConversionParams, tick) -> float:
    """Strongest NUCLEUS_GRID weight that keeps the calibration sentences intelligible."""
    errors = {}
    for k, weight in enumerate(sorted(NUCLEUS_GRID)):
        tick("checking intelligibility", k, len(NUCLEUS_GRID))
        params.cov_nucleus = float(weight)
        errors[weight] = sum(
            _word_errors(text, transcribe_clip(world.synthesise(conversion.convert(
                f, params, nucleus=nuc)), world.SAMPLE_RATE_HZ))
            for text, f, nuc in zip(CALIBRATION_SENTENCES, calib, calib_nuc))
    floor = errors[min(NUCLEUS_GRID)]
    return float(next(w for w in NUCLEUS_GRID if errors[w] <= floor + NUCLEUS_WER_TOL))


def _ticker(progress: Optional[Callable[[str, int, int], None]]) -> Callable[[str, int, int], None]:
    return progress if progress is not None else (lambda stage, done, total: None)


@dataclass
class ParallelUtterance:
    """One target clip and joe saying its words: the unit of parallel data."""

    target: world.WorldFeatures  # Harvest F0: the target side of every map
    text: str
    joe: Optional[world.WorldFeatures] = None  # None when the transcript is too short to say
    path: Optional[np.ndarray] = None  # path[i] = target frame aligned to joe frame i

    @property
    def rate(self) -> Optional[float]:
        # Voiced frames only: pauses and background noise in real clips would otherwise make
        # every target look slow (an energy-based count hit the 1.25 clip for all 8 voices).
        if self.joe is None:
            return None
        return float(self.target.voiced.sum() / max(self.joe.voiced.sum(), 1))


def parallel_utterance(prepared: np.ndarray, text: str, voice=None) -> ParallelUtterance:
    """Analyse a prepared clip (see prepare_clip) and let joe say `text` for it."""
    voice = voice or get_base_voice()
    tf = world.analyse(prepared, accurate_f0=True)
    if len(text.split()) < 2:
        return ParallelUtterance(tf, text)  # nothing usable to say; still counts for statistics
    joe = world.analyse(trim_silence(voice.speak(text, seed=0).samples, world.SAMPLE_RATE_HZ))
    return ParallelUtterance(tf, text, joe, dtw_path(joe.mcep[:, 1:], tf.mcep[:, 1:]))


def enroll(clips: Sequence[Tuple[np.ndarray, int]], *, ridge_mix: float = 0.5,
           ridge_lambda: float = 30.0, cov_mix: float = 0.0, choose_nucleus: bool = False,
           progress: Optional[Callable[[str, int, int], None]] = None) -> EnrollmentResult:
    """Learn the conversion toward the speaker of `clips` ((samples, rate) pairs), transcribing
    each clip with Whisper for the parallel data (see fit_parallel for the rest)."""
    from voxmith.speaker import get_speaker_encoder, mean_embedding

    tick = _ticker(progress)
    encoder = get_speaker_encoder("cpu")
    prepared = [prepare_clip(s, r) for s, r in clips]
    target_embedding = mean_embedding([encoder.embed(x, world.SAMPLE_RATE_HZ) for x in prepared])
    utterances = []
    for k, x in enumerate(prepared):
        tick("analysing clips", k, len(prepared))
        utterances.append(parallel_utterance(x, transcribe_clip(x, world.SAMPLE_RATE_HZ)))
    tick("analysing clips", len(prepared), len(prepared))
    return fit_parallel(utterances, target_embedding, ridge_mix=ridge_mix, ridge_lambda=ridge_lambda,
                        cov_mix=cov_mix, choose_nucleus=choose_nucleus, progress=progress)


def fit_parallel(utterances: Sequence[ParallelUtterance], target_embedding: np.ndarray, *,
                 ridge_mix: float = 0.5, ridge_lambda: float = 30.0, cov_mix: float = 0.0,
                 choose_nucleus: bool = False,
                 progress: Optional[Callable[[str, int, int], None]] = None) -> EnrollmentResult:
    """Pick the warp and fit the conversion from analysed parallel utterances. The warp is
    searched with the per-dimension mapping only (cov_mix 0): with the OT map in the loop the
    search drifts to extreme warps (daniel -0.3, WER 97%); the ridge is then fitted on top of the
    mapping at `cov_mix`."""
    from voxmith.speaker import get_speaker_encoder

    tick = _ticker(progress)
    voice = get_base_voice()
    encoder = get_speaker_encoder("cpu")
    tgt_feats = [u.target for u in utterances]
    said = [u for u in utterances if u.joe is not None]
    joe_feats = [u.joe for u in said]
    pairs = [(u.joe, u.target, u.path) for u in said]
    rates = [u.rate for u in said]
    transcripts = [u.text for u in utterances]

    calib_out = [voice.speak(s, seed=0) for s in CALIBRATION_SENTENCES]
    calib = [world.analyse(o.samples) for o in calib_out]
    calib_nuc = [phones.nucleus_weights(o.alignment, f.f0.size, world.SAMPLE_RATE_HZ,
                                        world.FRAME_PERIOD_MS) for o, f in zip(calib_out, calib)]
    src_feats = joe_feats + calib  # joe's statistics from everything he said

    tried: dict = {}

    def score(warp: float) -> float:
        if warp not in tried:
            p = conversion.fit(src_feats, tgt_feats, warp=warp)
            tried[warp] = _secs(calib, p, encoder, target_embedding)
            tick("choosing warp", len(tried), len(WARP_GRID) + 2 * len(WARP_REFINE))
        return tried[warp]

    best = max(WARP_GRID, key=score)
    for steps in WARP_REFINE:
        best = max([best] + [round(best + d, 3) for d in steps], key=score)
    top = max(tried.values())
    best = min((w for w in tried if tried[w] >= top - WARP_TIE_SECS), key=lambda w: (abs(w), -tried[w]))
    params = conversion.fit(src_feats, tgt_feats, warp=float(best), pairs=pairs,
                            ridge_lambda=ridge_lambda, ridge_mix=ridge_mix, cov_mix=cov_mix)
    if choose_nucleus and all(n is not None for n in calib_nuc):
        params.cov_nucleus = _choose_nucleus(calib, calib_nuc, params, tick)
    grid = np.array(list(tried.keys()), dtype=np.float64)
    rate = float(np.clip(np.median(rates), *RATE_RANGE)) if rates else 1.0
    return EnrollmentResult(params, target_embedding, grid,
                            np.array([tried[w] for w in tried]), rate, transcripts, list(utterances), calib)
