"""The intelligibility guard: no enrolled voice may come out as gibberish.

After enrollment the finished conversion (every component at its chosen strength) says
CHECK_SENTENCES through the engine's own synthesis path (the voice's speaking rate, the seed's
jitter, one seed per sentence, as a studio request would), and Whisper transcribes them. None of
them is a calibration sentence of the warp search (enrollment.py) or a training, test or
benchmark line, so the check never grades what was fitted on it. The unconverted base voice says
the same sentences at the same pace (each sentence's jittered rate: the very take every check
converts); its word errors are the floor (Whisper's own mistakes on
joe), which does not depend on the target and is kept per process (`floor`). While the conversion makes more than `tolerance_words` errors above that floor, components
are backed off, in this order, one step at a time: each phone's own deviation (phone_shift.py; the
newest component goes first, so a voice it makes unintelligible is treated as before it), the
residual network (adaptation.py), the ridge correction, the frequency warp (refitted at a fraction
of the enrolled warp), and the spectral statistics themselves (the envelope filter moves only part
of the way from joe to the target). Pitch mapping is kept: changing F0 never made a voice unintelligible here. With
everything backed off the output is joe at the target's pitch, so similarity degrades gracefully
instead of words being lost. Each step taken is recorded in words, with the error counts that
caused it, in the conditioning (`guard.*`), and from there in every take's details (the result
sidecar).

The strongest intelligible strengths are not always the ones to keep: the residual network and a
strong envelope change cost naturalness on most voices for little similarity on some. So after the
ladder, enrollment (`prefer_natural`) also speaks the check sentences at GENTLER strengths (each
weaker in every component than the ladder's, so no less intelligible: never heard again by
Whisper) and keeps whichever scores best on similarity to the voice (GE2E cosine to its enrolled
embedding) plus NATURALNESS_WEIGHT x naturalness (DistillMOS), both averaged over the sentences,
among those whose naturalness has not collapsed (NATURALNESS_COLLAPSE below the most natural one).
What was weighed and kept is recorded apart from the back-offs (`guard.natural`). Choosing with
the listener's figures in hindsight showed why (benchmarks/results/guard_grid.json,
docs/piper_vc_tuning.md): at equal naturalness the best choice of strengths gains little
similarity, while a gentler one gains much naturalness.

A dataset fine-tune is checked the same way when it is put to use (engine.check_finetune): the same
sentences, tolerance and floor, backed off along FINETUNE_LADDER, recorded under a `finetune.`
prefix; weights that stay unintelligible with everything backed off are refused.

Not here: fitting anything (enrollment.py, adaptation.py) or synthesis itself (engine.py hands the
guard a `Speaker`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from voxmith.engines.piper_vc import adaptation, base_cache, conversion, world
from voxmith.engines.piper_vc.intelligibility import transcribe_clip, word_errors

# Semantically unpredictable sentences (the listening-test kind): grammatical, but no word can be
# guessed from the others, so Whisper's language model cannot fill in what the conversion
# garbled. Plain sentences hid it: on a voice that garbled a third of ordinary text, a check on
# them found 2-4 errors above joe's (docs/piper_vc_tuning.md). None is said by the warp search, a
# test, a benchmark or a training line. 53 words in all.
CHECK_SENTENCES = (
    "The green lawyer folded a quiet mountain beside the frozen violin.",
    "Seven purple engines argued with a careful onion on Tuesday.",
    "A narrow doctor painted the hungry bridge under forty lamps.",
    "Why does the silver pencil marry the sleepy garage every winter?",
    "The brave kettle swallowed a sudden thunder near the wooden elbow.",
)
# JOIN_WINDOW_S > 0: a check hears its sentences joined into one recording, JOIN_PAUSE_S of
# silence apart, in windows of at most JOIN_WINDOW_S seconds. Whisper's encoder costs a whole 30-s
# window however short the audio, so five sentences heard one by one cost five windows where
# joined they cost one (a check about 3x cheaper). Off (0: one sentence per pass, as the guard was
# tuned): joined, Whisper hears both the base voice and the conversion better, and 3 of 8 voices
# came out with other strengths (both ways), a change not yet shown harmless on all 12 voices
# (docs/piper_vc_tuning.md, "Enrollment under a minute").
JOIN_PAUSE_S = 0.5
JOIN_WINDOW_S = 0.0
# Word errors over the base voice's that still count as intelligible: this share of the check
# sentences' words, and never fewer than MIN_TOLERANCE_WORDS. On these sentences one misheard word
# often takes its neighbours with it, so a voice that reads ordinary text well still makes a few.
TOLERANCE_SHARE = 0.1
MIN_TOLERANCE_WORDS = 2
# Back-off ladder: (component, strengths tried after the enrolled one, strongest first).
LADDER: Tuple[Tuple[str, Tuple[float, ...]], ...] = (
    ("phones", (0.0,)),
    ("network", adaptation.SCALE_GRID[1:]),
    ("ridge", (0.0,)),
    ("warp", (0.5, 0.0)),
    ("statistics", (0.5, 0.0)),
)
KEYS = {"network": "postnet_scale", "ridge": "guard.ridge_scale", "warp": "guard.warp_scale",
        "statistics": "guard.spectral_scale", "phones": "guard.phone_scale"}
# The ladder for a dataset fine-tune (engine.check_finetune): its network, then the ridge and the
# statistics of the conversion its checkpoint carries. The warp is kept: the checkpoint holds no
# data to refit it on, and with the statistics at 0 the envelope (warp included) is joe's anyway.
# A fine-tune has no phone deviations (they were learnt on the enrolled base voice's phones).
FINETUNE_LADDER = tuple(step for step in LADDER if step[0] not in ("warp", "phones"))
# The shares of the phone deviations (times the enrolled one) `restored` tries, strongest first,
# after the weighing. The quarter share: of the two shared voices where neither full nor half share
# passed the check (their statistics at full strength), one passed at a quarter and kept part of the
# deviations' similarity (docs/piper_vc_tuning.md, engine 14).
PHONE_RESTORE_SHARES = (1.0, 0.5, 0.25)
# Similarity (cosine) that one point of naturalness (DistillMOS, 1-5) is worth when prefer_natural
# compares the ladder's strengths with gentler ones. Chosen from 0.03-0.15 on the shared voices'
# development sentences (guard_grid.json; 0.08-0.10 chose alike), never on benchmark sentences.
NATURALNESS_WEIGHT = 0.08
# A candidate whose naturalness is this far below the most natural candidate's has collapsed and is
# not kept, whatever similarity it buys: the drop at which the studio's ranking refuses a take
# against the sentence's most natural one (studio.ranking.RankingConfig.naturalness_drop).
NATURALNESS_COLLAPSE = 0.6


def intelligible(errors: int, base_errors: int, tolerance: int) -> bool:
    """The guard's verdict: at most `tolerance` word errors above the base voice's."""
    return errors <= base_errors + tolerance


def tolerance_words(words: int) -> int:
    """Word errors above the base voice's allowed on `words` words of check sentences."""
    return max(MIN_TOLERANCE_WORDS, int(round(TOLERANCE_SHARE * words)))


@dataclass(frozen=True)
class Strengths:
    network: float = 1.0  # residual network scale (times the setting postnet_mix at synthesis)
    ridge: float = 1.0  # times the setting ridge_mix
    warp: float = 1.0  # fraction of the enrolled warp (the statistics are refitted at it)
    statistics: float = 1.0  # share of the envelope change applied (render.render spectral_scale)
    phones: float = 1.0  # each phone's own deviation (phone_shift.py), times the setting phone_mix

    def to_conditioning(self, prefix: str = "") -> Dict[str, np.ndarray]:
        """The conditioning keys synthesis reads the strengths from (KEYS, after `prefix`)."""
        return {prefix + key: np.asarray(getattr(self, name), np.float64) for name, key in KEYS.items()}


@dataclass
class GuardResult:
    strengths: Strengths
    base_errors: int  # the unconverted base voice's word errors on the check sentences
    errors: int  # the final conversion's (a lower bound when every step failed: see guard())
    words: int
    steps: List[str] = field(default_factory=list)  # each back-off and why, in words
    tolerance: int = 0  # word errors allowed above base_errors
    natural: str = ""  # prefer_natural's record (what it kept and why); "" when it did not run

    @property
    def passed(self) -> bool:
        """Whether the final strengths are intelligible (False: even the last step was not)."""
        return intelligible(self.errors, self.base_errors, self.tolerance)

    def to_conditioning(self, prefix: str = "") -> Dict[str, np.ndarray]:
        """The strengths and the record, every key after `prefix` ("" for enrollment's guard)."""
        return {**self.strengths.to_conditioning(prefix),
                prefix + "guard.base_errors": np.asarray(self.base_errors, np.int64),
                prefix + "guard.errors": np.asarray(self.errors, np.int64),
                prefix + "guard.words": np.asarray(self.words, np.int64),
                prefix + "guard.tolerance": np.asarray(self.tolerance, np.int64),
                prefix + "guard.steps": np.asarray(self.steps if self.steps else [""], dtype=str),
                **({prefix + "guard.natural": np.asarray(self.natural, dtype=str)} if self.natural else {})}


def summary(conditioning: Dict[str, np.ndarray], prefix: str = "") -> Optional[dict]:
    """What the guard did for a voice (its keys after `prefix`), for sidecars and reports; None if
    it never ran."""
    if prefix + "guard.errors" not in conditioning:
        return None
    steps = [str(s) for s in np.asarray(conditioning[prefix + "guard.steps"]).reshape(-1).tolist() if str(s)]
    out = {"base_errors": int(conditioning[prefix + "guard.base_errors"]),
           "errors": int(conditioning[prefix + "guard.errors"]),
           "words": int(conditioning[prefix + "guard.words"]), "reduced": steps,
           "strengths": {name: float(conditioning[prefix + key]) for name, key in KEYS.items()
                         if prefix + key in conditioning}}
    if prefix + "guard.tolerance" in conditioning:  # conditionings enrolled before it was stored lack it
        out["tolerance"] = int(conditioning[prefix + "guard.tolerance"])
        out["passed"] = intelligible(out["errors"], out["base_errors"], out["tolerance"])
    if prefix + "guard.natural" in conditioning:  # engine 10 on
        out["natural"] = str(conditioning[prefix + "guard.natural"])
    return out


# speak(text, seed, strengths): the conversion at `strengths` saying `text` as synthesis would
# (float32 at world.SAMPLE_RATE_HZ); strengths None: the unconverted base voice at the same rate.
Speaker = Callable[[str, int, Optional[Strengths]], np.ndarray]


@dataclass
class Refits:
    """The enrolled conversion and its refits at fractions of its warp (cached: each is a fit)."""

    refit: Callable[[float], conversion.ConversionParams]  # params at a given warp
    enrolled: conversion.ConversionParams
    _params: Dict[float, conversion.ConversionParams] = field(default_factory=dict)

    def params(self, warp_share: float) -> conversion.ConversionParams:
        """A copy of the conversion at `warp_share` times the enrolled warp."""
        if warp_share == 1.0:
            return replace(self.enrolled)
        warp = round(self.enrolled.warp * warp_share, 4)
        if warp not in self._params:
            self._params[warp] = self.refit(warp)
        return replace(self._params[warp])


Transcribe = Callable[[np.ndarray, int], str]
# score(samples at world.SAMPLE_RATE_HZ) -> (similarity to the voice, naturalness) of one clip
Score = Callable[[np.ndarray], Tuple[float, float]]
_floors: Dict[Hashable, int] = {}
_floors_lock = threading.Lock()


def floor(speak: Speaker, sentences: Sequence[str] = CHECK_SENTENCES, transcribe: Transcribe = transcribe_clip,
          key: Optional[Hashable] = None, identity: Optional[Sequence[str]] = None) -> int:
    """The base voice's word errors on `sentences` (`speak` with strengths None, sentence k at
    seed k): the guard's floor. It does not depend on the target, so with a `key` (what the base
    voice's output depends on: the voice, its length_scale, the transcriber) it is measured once
    per process and reused by later enrollments; with an `identity` too (the same as strings:
    `floor_identity`) once per machine (base_cache.py), which keeps five syntheses and Whisper
    passes out of every process's first enrollment at that rate."""
    def measured() -> int:
        return heard_errors(speak, sentences, None, transcribe)[0]

    def measure() -> int:
        if identity is None:
            return measured()
        value = base_cache.remembered("guard-floor", tuple(identity) + tuple(sentences) + _hearing(),
                                      lambda: {"errors": measured()}, _valid_floor)
        return int(value["errors"])

    if key is None:
        return measure()
    key = (key, tuple(sentences), transcribe, _hearing())
    with _floors_lock:
        if key in _floors:
            return _floors[key]
    made = measure()  # outside the lock: other enrollments need not wait on this one
    with _floors_lock:
        return _floors.setdefault(key, made)


def _hearing() -> Tuple[str, ...]:
    """How checks are heard (the floor is measured the same way, so it is keyed by this)."""
    return (f"join={JOIN_PAUSE_S!r}/{JOIN_WINDOW_S!r}",)


def _windows(durations: Sequence[float]) -> List[List[int]]:
    """Consecutive sentence indices grouped into windows of at most JOIN_WINDOW_S seconds (pauses
    included); a longer sentence has a window of its own. JOIN_WINDOW_S 0: one sentence each."""
    groups: List[List[int]] = []
    length = 0.0
    for k, seconds in enumerate(durations):
        if groups and _fits(length, seconds):
            groups[-1].append(k)
            length += JOIN_PAUSE_S + seconds
        else:
            groups.append([k])
            length = seconds
    return groups


def _fits(length: float, seconds: float) -> bool:
    return JOIN_WINDOW_S > 0 and length + JOIN_PAUSE_S + seconds <= JOIN_WINDOW_S


def heard_errors(speak: Speaker, sentences: Sequence[str], strengths: Optional[Strengths],
                 transcribe: Transcribe = transcribe_clip, limit: Optional[int] = None) -> Tuple[int, bool]:
    """(word errors, whether it stopped early): `sentences` said by `speak` at `strengths`
    (sentence k at seed k) and heard by `transcribe`, one by one or joined into windows
    (`_windows`); past `limit` errors nothing more is said or heard, since the rest cannot change
    a verdict."""
    made = 0
    if JOIN_WINDOW_S <= 0:  # one by one: each sentence said only once the ones before it are heard
        for k, text in enumerate(sentences):
            made += word_errors(text, transcribe(speak(text, k, strengths), world.SAMPLE_RATE_HZ))
            if limit is not None and made > limit and k + 1 < len(sentences):
                return made, True
        return made, False
    pause = np.zeros(int(round(JOIN_PAUSE_S * world.SAMPLE_RATE_HZ)), np.float32)
    window: List[np.ndarray] = []
    texts: List[str] = []
    length = 0.0

    def hear() -> int:
        return word_errors(" ".join(texts), transcribe(np.concatenate(window), world.SAMPLE_RATE_HZ))

    for k, text in enumerate(sentences):
        audio = np.asarray(speak(text, k, strengths), np.float32)
        seconds = audio.size / world.SAMPLE_RATE_HZ
        if window and _fits(length, seconds):
            window += [pause, audio]
            texts.append(text)
            length += JOIN_PAUSE_S + seconds
            continue
        if window:
            made += hear()
            if limit is not None and made > limit:
                return made, True
        window, texts, length = [audio], [text], seconds
    made += hear()
    return made, False


def _valid_floor(value: dict) -> bool:
    errors = value.get("errors")
    return isinstance(errors, int) and not isinstance(errors, bool) and errors >= 0


# Bump when how a floor is measured changes (the check sentences' synthesis or how errors are
# counted), so that floors kept on disk by an earlier voxmith are measured again.
FLOOR_VERSION = 2  # 2: heard at each sentence's jittered pace (engine._base_speaker)


def floor_identity(voice, length_scale: float, transcriber: Sequence[str], engine: str = "") -> Optional[tuple]:
    """What a floor measured on base voice `voice` at `length_scale` and heard by the transcriber
    named `transcriber` (intelligibility.transcriber_identity) depends on, for `floor`, with
    FLOOR_VERSION and the measuring `engine`'s name and version; None for a voice that cannot say
    what it depends on (scripted voices): then it is not kept on disk."""
    return base_cache.identity_of(voice, [f"length_scale={float(length_scale)!r}", f"floor={FLOOR_VERSION}",
                                          f"engine={engine}"], transcriber)


def guard(speak: Speaker, start: Strengths, sentences: Sequence[str] = CHECK_SENTENCES,
          tolerance: Optional[int] = None, ladder_steps: Sequence[Tuple[str, Sequence[float]]] = LADDER,
          progress=None, transcribe: Transcribe = transcribe_clip,
          base_errors: Optional[int] = None) -> GuardResult:
    """Back off `start` along `ladder_steps` (LADDER: every component) until the sentences, said
    by `speak` (sentence k at seed k) and heard by `transcribe` (Whisper), are intelligible (see
    the module docstring). `tolerance`: word errors allowed above the base voice's (default
    `tolerance_words`). `base_errors`: the floor if already known (`floor`), else measured here."""
    words = sum(len(t.split()) for t in sentences)
    tolerance = tolerance_words(words) if tolerance is None else tolerance

    base = floor(speak, sentences, transcribe) if base_errors is None else int(base_errors)
    ladder = [(name, value) for name, values in ladder_steps for value in values if value < getattr(start, name)]
    current, steps, k = start, [], 0
    total = len(ladder) + 1
    while True:
        if progress is not None:
            progress("checking intelligibility", k, total)
        made, early = heard_errors(speak, sentences, current, transcribe, base + tolerance)
        if intelligible(made, base, tolerance):
            break
        while ladder and getattr(current, ladder[0][0]) <= ladder[0][1]:
            ladder.pop(0)  # already that weak (e.g. no network to reduce)
        if not ladder:
            break
        name, value = ladder.pop(0)
        count = f"at least {made}" if early else f"{made}"
        steps.append(f"{name} {getattr(current, name):g} -> {value:g}: {count} word errors on the check "
                     f"sentences, {base} for the base voice (tolerance {tolerance})")
        current = replace(current, **{name: value})
        k += 1
    if progress is not None:
        progress("checking intelligibility", total, total)
    return GuardResult(current, base, made, words, steps, tolerance)


def restored(speak: Speaker, checked: GuardResult, component: str, values: Sequence[float],
             sentences: Sequence[str] = CHECK_SENTENCES, transcribe: Transcribe = transcribe_clip,
             progress=None) -> GuardResult:
    """`checked` with `component` back at the first of `values` (strongest first) at which the check
    sentences stay intelligible (heard as `guard` hears them, against its floor and tolerance), and
    that recorded after the weighing's record (`natural`: it comes after it, and is no reduction);
    as it was when none is, or when it is that strong already. For a component the ladder took away
    first, while everything else was still at full strength: at the strengths finally kept it may
    be intelligible again."""
    trials = [v for v in values if v > getattr(checked.strengths, component)]
    for k, value in enumerate(trials):
        if progress is not None:
            progress("checking intelligibility", k, len(trials))
        trial = replace(checked.strengths, **{component: value})
        made, _ = heard_errors(speak, sentences, trial, transcribe, checked.base_errors + checked.tolerance)
        if intelligible(made, checked.base_errors, checked.tolerance):
            record = (f"then {component} {getattr(checked.strengths, component):g} -> {value:g}: intelligible at "
                      f"the kept strengths ({made} word errors on the check sentences, {checked.base_errors} for "
                      f"the base voice, tolerance {checked.tolerance})")
            checked = replace(checked, strengths=trial, errors=made,
                              natural=f"{checked.natural}; {record}" if checked.natural else record)
            break
    if progress is not None and trials:
        progress("checking intelligibility", len(trials), len(trials))
    return checked


def gentler(strengths: Strengths) -> List[Strengths]:
    """prefer_natural's candidates after `strengths`, each weaker in every component: without the
    network, then the gentlest conversion (no network, ridge or warp; at most half the statistics,
    which scales the phone deviations with it; their own share as the guard left it)."""
    out: List[Strengths] = []
    if strengths.network > 0:
        out.append(replace(strengths, network=0.0))
    gentlest = Strengths(network=0.0, ridge=0.0, warp=0.0, statistics=min(0.5, strengths.statistics),
                         phones=strengths.phones)
    if gentlest != strengths and gentlest not in out:
        out.append(gentlest)
    return out


def prefer_natural(speak: Speaker, checked: GuardResult, score: Score, sentences: Sequence[str] = CHECK_SENTENCES,
                   weight: float = NATURALNESS_WEIGHT, collapse: float = NATURALNESS_COLLAPSE,
                   progress=None) -> GuardResult:
    """`checked` with its strengths replaced by the best of them and their `gentler` ones, by mean
    similarity + `weight` x mean naturalness of `sentences` said by `speak` (sentence k at seed k),
    among those at most `collapse` less natural than the most natural, and the choice recorded in
    `natural` (its errors stay the check's of the guard's strengths)."""
    candidates = [checked.strengths] + gentler(checked.strengths)
    if len(candidates) == 1:
        return replace(checked, natural="kept: nothing gentler to weigh")
    measured = []
    for k, strengths in enumerate(candidates):
        if progress is not None:
            progress("weighing naturalness", k, len(candidates))
        scores = np.array([score(speak(text, j, strengths)) for j, text in enumerate(sentences)], np.float64)
        measured.append(scores.mean(axis=0))
    if progress is not None:
        progress("weighing naturalness", len(candidates), len(candidates))
    # A candidate with no finite score (DistillMOS or GE2E gave NaN) is never chosen over one with;
    # with none finite, the guard's strengths stay.
    finite = [k for k, scores in enumerate(measured) if np.all(np.isfinite(scores))] or [0]
    most_natural = max(measured[k][1] for k in finite)
    allowed = [k for k in finite if measured[k][1] >= most_natural - collapse] or [0]
    best = max(allowed, key=lambda k: measured[k][0] + weight * measured[k][1])
    if best == 0:
        similarity, naturalness = measured[0]
        return replace(checked, natural=(f"kept: the intelligible strengths scored best (naturalness {naturalness:.2f}, "
                                         f"similarity {similarity:.3f} on the check sentences, weighed similarity + "
                                         f"{weight:g} x naturalness against {len(candidates) - 1} gentler)"))
    chosen = candidates[best]
    changed = ", ".join(f"{name} {getattr(checked.strengths, name):g} -> {getattr(chosen, name):g}"
                        for name in KEYS if getattr(chosen, name) != getattr(checked.strengths, name))
    (sim0, nat0), (sim1, nat1) = measured[0], measured[best]
    why = (f"the intelligible strengths' naturalness collapsed, more than {collapse:g} below the most natural "
           f"candidate's" if 0 not in allowed else f"weighed similarity + {weight:g} x naturalness")
    natural = (f"{changed}: more natural (naturalness {nat0:.2f} -> {nat1:.2f}, similarity {sim0:.3f} -> "
               f"{sim1:.3f} on the check sentences, {why})")
    return replace(checked, strengths=chosen, natural=natural)


__all__ = ["CHECK_SENTENCES", "JOIN_PAUSE_S", "JOIN_WINDOW_S", "TOLERANCE_SHARE", "MIN_TOLERANCE_WORDS", "LADDER", "FINETUNE_LADDER", "PHONE_RESTORE_SHARES", "Speaker", "Strengths",
           "GuardResult", "intelligible", "NATURALNESS_COLLAPSE", "NATURALNESS_WEIGHT", "Refits", "Score", "Transcribe", "floor", "gentler", "prefer_natural", "restored", "floor_identity", "guard", "heard_errors", "summary",
           "tolerance_words"]
