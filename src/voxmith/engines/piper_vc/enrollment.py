"""Enrollment for piper-vc: learn the conversion from a few clips of the target speaker.

Steps: (1) clean and analyse the target clips with WORLD (Harvest F0) and transcribe each with
Whisper; (1b) choose the base voice, joe or a Kokoro style, nearest the target in pitch and voice
(base_choice.py; "joe" below means that base voice); (2) let joe say each clip's words, giving
parallel utterances; (3) DTW-align joe's
frames to the target's (steps 1-3: parallel.py); (4) pick the frequency-warp factor that maximises GE2E similarity
between converted calibration sentences and the target clips; (5) fit the statistics mapping
and the ridge correction at that warp (conversion.fit); (6) measure the speaking rate from the
parallel utterances' durations (rate.py); (7) each phone's own envelope deviation from the
aligned utterances (phone_shift.py).
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from voxmith.engines.piper_vc import base_cache, base_choice, conversion, phone_shift, rate as speaking, render, world
from voxmith.speaker import cosine_similarity, get_speaker_encoder, mean_embedding
from voxmith.engines.piper_vc.base_voice import JOE, JOE_VOICES, get_base_voice
from voxmith.engines.piper_vc.intelligibility import transcribe_clip
from voxmith.engines.piper_vc.parallel import ParallelUtterance, parallel_utterance, prepare_clip
from voxmith.torch_threads import on_torch_threads

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
# Warps whose calibration SECS is within this of the best count as ties; the smallest |warp|
# among them wins, because larger warps cost intelligibility (docs/piper_vc_tuning.md).
WARP_TIE_SECS = 0.01
# Threads scoring warps at once during enrollment's search (search_warp); the choice is the same.
WARP_WORKERS = 2
# The base voices enrollment chooses from (base_choice.py; base_voice.BASE_VOICES are all there
# are): joe and joe scaled (base_voice.ScaledJoe), all at joe's speed. Not Kokoro's styles: with a
# Kokoro base the all-voice benchmark gains naturalness and similarity but loses words on three
# voices and runs several times slower (docs/piper_vc_tuning.md); `piper-vc-natural` adds them and
# `benchmarks/clone_quality.py --base-voices` tries others.
BASE_CANDIDATES: Tuple[str, ...] = JOE_VOICES


@dataclass
class EnrollmentResult:
    params: conversion.ConversionParams
    target_embedding: np.ndarray
    warp_grid: np.ndarray  # warps tried (in order)
    warp_scores: np.ndarray  # calibration SECS for each
    # The base voice's length_scale that matches the target's speaking rate (rate.py), measured by
    # `enroll`; 1 from `fit_parallel` alone (dataset fine-tuning speaks at joe's own pace).
    rate: float = 1.0
    # The target's trimmed duration over the base voice's on the clips' words (None: not measured),
    # so a fine-tune, which speaks through joe, can find joe's rate for it (engine._finetune_rate).
    duration_ratio: Optional[float] = None
    transcripts: List[str] = field(default_factory=list)
    # The analysed parallel data, kept so the engine can train its residual network on it
    # (adaptation.py) without analysing the clips again; not part of the conditioning.
    utterances: List[ParallelUtterance] = field(default_factory=list)
    # Joe's analysed CALIBRATION_SENTENCES, for checks of the finished conversion (adaptation.py).
    calibration: List[world.WorldFeatures] = field(default_factory=list)
    # What fit_parallel fitted with, so the guard can refit the conversion at a weaker warp.
    ridge_lambda: float = 30.0
    cov_mix: float = 0.0
    # The base voice that said the calibration sentences and the clips' words, and why
    # (base_choice.py); None: joe, not chosen (dataset fine-tuning fits on joe).
    base: Optional[base_choice.BaseChoice] = None
    # Each phone's envelope deviation (phone_shift.py), measured by `enroll`; None without Piper's
    # phone timings (and from `fit_parallel` alone).
    phones: Optional[phone_shift.PhoneDeviations] = None

    def refit(self, warp: float, ridge_mix: float = 1.0) -> conversion.ConversionParams:
        """The conversion fitted on the same data at another `warp` (ridge at `ridge_mix`)."""
        said = [u for u in self.utterances if u.joe is not None]
        return conversion.fit([u.joe for u in said] + list(self.calibration), [u.target for u in self.utterances],
                              warp=warp, pairs=[(u.joe, u.target, u.path) for u in said],
                              ridge_lambda=self.ridge_lambda, ridge_mix=ridge_mix, cov_mix=self.cov_mix)


def _secs(spoken: Sequence[np.ndarray], feats: Sequence[world.WorldFeatures], params: conversion.ConversionParams,
          encoder, target_embedding: np.ndarray) -> float:
    audio = np.concatenate([render.render(x, f, conversion.convert(f, params)) for x, f in zip(spoken, feats)])
    return cosine_similarity(encoder.embed(audio, world.SAMPLE_RATE_HZ), target_embedding)


def base_curve(voice=None) -> speaking.RateCurve:
    """The duration-vs-length_scale curve (rate.py) of the base voice `voice` (joe when None),
    measured once per process, and once per machine (base_cache)."""
    voice = voice or get_base_voice()

    def measure() -> dict:
        curve = speaking.measure_curve(lambda text, scale: voice.speak(text, seed=0, length_scale=scale).samples,
                                       voice.sample_rate_hz)
        return {"scales": list(curve.scales), "ratios": list(curve.ratios)}

    def remembered() -> speaking.RateCurve:
        value = base_cache.remembered(
            "rate-curve", base_cache.identity_of(voice, speaking.CURVE_SENTENCES, speaking.CURVE_SCALES), measure,
            lambda v: base_cache.finite_numbers(v["scales"], len(speaking.CURVE_SCALES))
            and base_cache.finite_numbers(v["ratios"], len(speaking.CURVE_SCALES)))
        return speaking.RateCurve(tuple(value["scales"]), tuple(value["ratios"]))

    return speaking.curve_for(voice, remembered)


def calibration_audio(voice) -> List[np.ndarray]:
    """The base voice `voice` saying CALIBRATION_SENTENCES (seed 0, its own pace): it depends only
    on the voice, so it is kept on disk per machine (base_cache; float32 samples, exact), which
    spares every later enrollment two syntheses (about 7 s of Kokoro speech for a Kokoro base)."""
    def measure() -> dict:
        audio = [np.asarray(voice.speak(s, seed=0).samples, np.float32) for s in CALIBRATION_SENTENCES]
        return {"samples": [base64.b64encode(x.astype("<f4").tobytes()).decode("ascii") for x in audio]}

    def valid(value: dict) -> bool:
        items = value.get("samples")
        return isinstance(items, list) and len(items) == len(CALIBRATION_SENTENCES) and all(
            isinstance(x, str) and x for x in items)

    value = base_cache.remembered("calibration-audio", base_cache.identity_of(voice, CALIBRATION_SENTENCES),
                                  measure, valid)
    try:
        audio = [np.frombuffer(base64.b64decode(x, validate=True), dtype="<f4").astype(np.float32)
                 for x in value["samples"]]
    except ValueError:  # a damaged file that still looked like one: say them again
        audio = []
    if not audio or any(x.size == 0 or not np.isfinite(x).all() for x in audio):
        audio = [np.asarray(voice.speak(s, seed=0).samples, np.float32) for s in CALIBRATION_SENTENCES]
    return audio


def _ticker(progress: Optional[Callable[[str, int, int], None]]) -> Callable[[str, int, int], None]:
    return progress if progress is not None else (lambda stage, done, total: None)


def search_warp(score: Callable[[float], float],
                tick: Optional[Callable[[int, int], None]] = None, workers: int = 1) -> Tuple[float, dict]:
    """The warp to use and {warp: score} of every warp tried: `score(warp)` (speaker similarity of
    a conversion at that warp) over WARP_GRID, refined around the best, then the smallest |warp|
    among those within WARP_TIE_SECS of the top. Used by enrollment (joe -> target) and by
    voice conversion of other speakers (source -> target). With `workers` > 1 the warps of each
    round (the grid, then each refinement) are scored on that many threads: `score` must be
    thread-safe; the scores, their order and the choice are those of one thread."""
    tried: dict = {}
    total = len(WARP_GRID) + 2 * len(WARP_REFINE)

    def scored(warps: Sequence[float]) -> None:
        todo = list(dict.fromkeys(w for w in warps if w not in tried))  # in order, once each
        if workers > 1 and len(todo) > 1:
            # One torch thread each (the GE2E embedding): `workers` threads already fill the cores,
            # and a second OpenMP thread per worker would only wait at barriers.
            with ThreadPoolExecutor(max_workers=min(workers, len(todo)), thread_name_prefix="piper-vc-warp") as pool:
                futures = [pool.submit(on_torch_threads(1, score), w) for w in todo]
                # Ticked as each warp finishes, not all at once after the round (a bar showed
                # thousands of warps a second and no ETA).
                for done, _ in enumerate(as_completed(futures), 1):
                    if tick is not None:
                        tick(len(tried) + done, total)
                scores = [f.result() for f in futures]
            tried.update(zip(todo, scores))  # in `todo` order, as one thread would
            return
        for warp in todo:
            tried[warp] = score(warp)
            if tick is not None:
                tick(len(tried), total)

    if tick is not None:
        tick(0, total)  # the bar starts with the search, so its rate and ETA count from here
    scored(WARP_GRID)
    best = max(WARP_GRID, key=tried.__getitem__)
    for steps in WARP_REFINE:
        candidates = [best] + [round(best + d, 3) for d in steps]
        scored(candidates)
        best = max(candidates, key=tried.__getitem__)
    top = max(tried.values())
    best = min((w for w in tried if tried[w] >= top - WARP_TIE_SECS), key=lambda w: (abs(w), -tried[w]))
    return float(best), tried


def enroll(clips: Sequence[Tuple[np.ndarray, int]], *, ridge_mix: float = 0.5,
           ridge_lambda: float = 30.0, cov_mix: float = 0.0,
           candidates: Optional[Sequence[str]] = None,
           progress: Optional[Callable[[str, int, int], None]] = None) -> EnrollmentResult:
    """Learn the conversion toward the speaker of `clips` ((samples, rate) pairs), transcribing
    each clip with Whisper for the parallel data, from the base voice among `candidates` (default
    BASE_CANDIDATES) that base_choice picks for the target (see fit_parallel for the rest)."""
    tick = _ticker(progress)
    encoder = get_speaker_encoder("cpu")
    prepared = [prepare_clip(s, r) for s, r in clips]
    analysed = []
    # Whisper transcribes the clips and GE2E embeds them on two other threads (CTranslate2 and
    # torch release the GIL) while this one analyses them with WORLD (which holds it): the same
    # results, overlapping. The embedding runs on one torch thread: its OpenMP threads would only
    # wait at barriers while the cores are this busy.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper-vc-asr") as asr, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper-vc-embed") as embed:
        embeddings = [embed.submit(on_torch_threads(1, encoder.embed), x, world.SAMPLE_RATE_HZ) for x in prepared]
        texts = [asr.submit(transcribe_clip, x, world.SAMPLE_RATE_HZ) for x in prepared]
        for k, x in enumerate(prepared):
            tick("analysing clips", k, len(prepared))
            analysed.append((x, world.analyse(x, accurate_f0=True), texts[k].result()))
        target_embedding = mean_embedding([e.result() for e in embeddings])
    tick("analysing clips", len(prepared), len(prepared))
    # The base voice is chosen from the target's pitch and voice before it says anything, so
    # every base-dependent step below (parallel data, calibration, warp search, guard) uses it.
    choice = base_choice.choose_for([f for _, f, _ in analysed], target_embedding,
                                    BASE_CANDIDATES if candidates is None else candidates, progress=tick)
    voice = get_base_voice(choice.name)
    utterances = [parallel_utterance(x, text, voice, target=f) for x, f, text in analysed]
    # The base voice's duration curve (rate.py) does not depend on the target: measured (once per
    # machine, base_cache) on a second thread while fit_parallel searches the warp (Piper releases the GIL).
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper-vc-curve")
    curve = pool.submit(base_curve, voice)
    pool.shutdown(wait=False)
    result = fit_parallel(utterances, target_embedding, ridge_mix=ridge_mix, ridge_lambda=ridge_lambda,
                          cov_mix=cov_mix, progress=progress, voice=voice)
    said = [u for u in utterances if u.joe is not None]
    ratio = speaking.duration_ratio([u.target.f0.size for u in said], [u.joe.f0.size for u in said])
    result.rate = speaking.speaking_rate(ratio, curve.result(), speaking.rate_range_for(getattr(voice, "name", JOE)))
    result.duration_ratio = ratio
    result.base = choice
    labelled = [u for u in said if u.labels is not None]
    result.phones = phone_shift.fit([u.target.mcep[u.path] - u.joe.mcep for u in labelled],
                                    [u.labels for u in labelled])
    return result


def fit_parallel(utterances: Sequence[ParallelUtterance], target_embedding: np.ndarray, *,
                 ridge_mix: float = 0.5, ridge_lambda: float = 30.0, cov_mix: float = 0.0,
                 progress: Optional[Callable[[str, int, int], None]] = None, voice=None) -> EnrollmentResult:
    """Pick the warp and fit the conversion from analysed parallel utterances, said by the base
    voice `voice` (joe when None). The warp is
    searched with the per-dimension mapping only (cov_mix 0): with the OT map in the loop the
    search drifts to extreme warps that cost intelligibility (docs/piper_vc_tuning.md); the ridge
    is then fitted on top of the mapping at `cov_mix`."""
    tick = _ticker(progress)
    voice = voice or get_base_voice()
    encoder = get_speaker_encoder("cpu")
    tgt_feats = [u.target for u in utterances]
    said = [u for u in utterances if u.joe is not None]
    joe_feats = [u.joe for u in said]
    pairs = [(u.joe, u.target, u.path) for u in said]
    transcripts = [u.text for u in utterances]

    calib_audio = calibration_audio(voice)
    calib = [world.analyse(x) for x in calib_audio]
    src_feats = joe_feats + calib  # joe's statistics from everything he said

    def score(warp: float) -> float:
        p = conversion.fit(src_feats, tgt_feats, warp=warp)
        return _secs(calib_audio, calib, p, encoder, target_embedding)

    # Each warp's score (a fit, two renderings, a GE2E embedding) is independent of the others:
    # two at a time on 2 cores (numpy and torch release the GIL for most of it).
    best, tried = search_warp(score, lambda done, total: tick("choosing warp", done, total), workers=WARP_WORKERS)
    params = conversion.fit(src_feats, tgt_feats, warp=float(best), pairs=pairs,
                            ridge_lambda=ridge_lambda, ridge_mix=ridge_mix, cov_mix=cov_mix)
    grid = np.array(list(tried.keys()), dtype=np.float64)
    return EnrollmentResult(params, target_embedding, grid, np.array([tried[w] for w in tried]),
                            transcripts=transcripts, utterances=list(utterances), calibration=calib,
                            ridge_lambda=ridge_lambda, cov_mix=cov_mix)
