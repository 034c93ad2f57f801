"""The intelligibility guard: no enrolled voice may come out as gibberish.

After enrollment, the finished conversion (every component at its chosen strength, rendered as
synthesis renders it) says GUARD_SENTENCES, which no training, test or benchmark uses, and
Whisper transcribes them. The unconverted base voice says the same sentences; its word errors
are the floor (Whisper's own mistakes on joe). While the conversion makes more than
`TOLERANCE_WORDS` errors above that floor, components are backed off, in this order, one step
at a time: the residual network (adaptation.py), the ridge correction, the frequency warp
(refitted at a fraction of the enrolled warp), and the spectral statistics themselves (the
envelope filter moves only part of the way from joe to the target). Pitch mapping is kept:
changing F0 never made a voice unintelligible here. With everything backed off the output is joe
at the target's pitch, so similarity degrades gracefully instead of words being lost. Each step
taken is recorded in words, with the error counts that caused it, in the conditioning
(`guard.*`), and from there in every take's details (the result sidecar).

Not here: fitting anything (enrollment.py, adaptation.py) or the synthesis loop (engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from voxmith.engines.piper_vc import adaptation, conversion, postnet, render, world
from voxmith.engines.piper_vc.base_voice import get_base_voice
from voxmith.engines.piper_vc.intelligibility import transcribe_clip, word_errors

# Never said by any test, benchmark or training line; varied sounds, 38 words in all.
GUARD_SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "She sells seashells by the seashore, and I would like a cup of coffee.",
    "Thirty people waited outside the bakery before it opened on Monday morning.",
)
# Word errors over the base voice's on GUARD_SENTENCES that still count as intelligible: about
# 5 % of their words; Whisper alone varies by a word or two between near-identical renderings.
TOLERANCE_WORDS = 2
# Back-off ladder: (component, strengths tried after the enrolled one, strongest first).
LADDER: Tuple[Tuple[str, Tuple[float, ...]], ...] = (
    ("network", adaptation.SCALE_GRID[1:]),
    ("ridge", (0.0,)),
    ("warp", (0.5, 0.0)),
    ("statistics", (0.5, 0.0)),
)
KEYS = {"network": "postnet_scale", "ridge": "guard.ridge_scale", "warp": "guard.warp_scale",
        "statistics": "guard.spectral_scale"}


@dataclass(frozen=True)
class Strengths:
    network: float = 1.0  # residual network scale (times the setting postnet_mix at synthesis)
    ridge: float = 1.0  # times the setting ridge_mix
    warp: float = 1.0  # fraction of the enrolled warp (the statistics are refitted at it)
    statistics: float = 1.0  # share of the envelope change applied (render.render spectral_scale)


@dataclass
class GuardResult:
    strengths: Strengths
    base_errors: int  # the unconverted base voice's word errors on GUARD_SENTENCES
    errors: int  # the final conversion's
    words: int
    steps: List[str] = field(default_factory=list)  # each back-off and why, in words

    def to_conditioning(self) -> Dict[str, np.ndarray]:
        s = self.strengths
        return {KEYS["network"]: np.asarray(s.network, np.float64),
                KEYS["ridge"]: np.asarray(s.ridge, np.float64),
                KEYS["warp"]: np.asarray(s.warp, np.float64),
                KEYS["statistics"]: np.asarray(s.statistics, np.float64),
                "guard.base_errors": np.asarray(self.base_errors, np.int64),
                "guard.errors": np.asarray(self.errors, np.int64),
                "guard.words": np.asarray(self.words, np.int64),
                "guard.steps": np.asarray(self.steps if self.steps else [""], dtype=str)}


def summary(conditioning: Dict[str, np.ndarray]) -> Optional[dict]:
    """What the guard did for a voice, for sidecars and reports; None if it never ran."""
    if "guard.errors" not in conditioning:
        return None
    steps = [str(s) for s in np.asarray(conditioning["guard.steps"]).reshape(-1).tolist() if str(s)]
    return {"base_errors": int(conditioning["guard.base_errors"]), "errors": int(conditioning["guard.errors"]),
            "words": int(conditioning["guard.words"]), "reduced": steps,
            "strengths": {name: float(conditioning[key]) for name, key in KEYS.items() if key in conditioning}}


@dataclass
class Renderer:
    """Renders the guard sentences for a set of strengths, as engine.synthesize would."""

    refit: Callable[[float], conversion.ConversionParams]  # params at a given warp
    warp: float  # the enrolled warp
    ridge_mix: float  # the default setting (engine.PiperVCSettings.ridge_mix)
    model: Optional[postnet.FinetunedConversion] = None
    _params: Dict[float, conversion.ConversionParams] = field(default_factory=dict)

    def params(self, s: Strengths) -> conversion.ConversionParams:
        warp = round(self.warp * s.warp, 4)
        if warp not in self._params:
            self._params[warp] = self.refit(warp)
        p = replace(self._params[warp])
        p.ridge_mix = self.ridge_mix * s.ridge if p.ridge.any() else 0.0
        return p

    def __call__(self, samples: np.ndarray, feats: world.WorldFeatures, s: Strengths) -> np.ndarray:
        p = self.params(s)
        converted = conversion.convert(feats, p)
        if self.model is not None and s.network > 0:
            converted = postnet.refine(self.model, converted, p, scale=s.network)
        return render.render(samples, feats, converted, spectral_scale=s.statistics)


def guard(renderer: Renderer, start: Strengths, sentences: Sequence[str] = GUARD_SENTENCES,
          tolerance: int = TOLERANCE_WORDS, ladder_steps: Sequence[Tuple[str, Sequence[float]]] = LADDER,
          progress=None) -> GuardResult:
    """Back off `start` along `ladder_steps` (LADDER: every component) until the rendered
    sentences are intelligible (see the module docstring)."""
    voice = get_base_voice()
    spoken = [voice.speak(text, seed=0).samples for text in sentences]
    feats = [world.analyse(x) for x in spoken]
    words = sum(len(t.split()) for t in sentences)

    def errors(audio: Sequence[np.ndarray]) -> int:
        return sum(word_errors(text, transcribe_clip(x, world.SAMPLE_RATE_HZ)) for text, x in zip(sentences, audio))

    base = errors(spoken)
    ladder = [(name, value) for name, values in ladder_steps for value in values if value < getattr(start, name)]
    current, steps, k = start, [], 0
    if renderer.model is None:
        current = replace(current, network=0.0)
    total = len(ladder) + 1
    while True:
        if progress is not None:
            progress("checking intelligibility", k, total)
        made = errors([renderer(x, f, current) for x, f in zip(spoken, feats)])
        if made <= base + tolerance:
            break
        while ladder and getattr(current, ladder[0][0]) <= ladder[0][1]:
            ladder.pop(0)  # already that weak (e.g. no network to reduce)
        if not ladder:
            break
        name, value = ladder.pop(0)
        steps.append(f"{name} {getattr(current, name):g} -> {value:g}: {made} word errors on the check "
                     f"sentences, {base} for the base voice (tolerance {tolerance})")
        current = replace(current, **{name: value})
        k += 1
    if progress is not None:
        progress("checking intelligibility", total, total)
    return GuardResult(current, base, made, words, steps)


__all__ = ["GUARD_SENTENCES", "TOLERANCE_WORDS", "LADDER", "Strengths", "GuardResult", "Renderer", "guard",
           "summary"]
