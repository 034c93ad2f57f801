"""Which base voice says the text for a target: joe, joe scaled or a Kokoro style (base_voice.BASE_VOICES).

Naturalness is lost in proportion to how far the base voice is moved (PSOLA pitch ratios and
spectral warps both cost DistillMOS; docs/piper_vc_tuning.md), so the base should already be close
to the target. Each candidate is profiled once per process: it says PROFILE_SENTENCES, and its
median F0 and its GE2E embedding are kept. For a target (its enrollment clips' Harvest F0 and
mean embedding), the candidates whose pitch is within PITCH_SLACK of the nearest candidate's are
kept, and of those the one most similar to the target wins. Pitch first, because it is what PSOLA
must change and it separates the female styles from the male voices reliably; similarity then
picks within a pitch range, where it is meaningful. Cost: nothing per enrollment once the
profiles exist (six short sentences, once per process).

The choice is stored with the conditioning (`base_voice`, `base_choice.*`) with its reason in
words; conditionings without it were made with joe.

Not here: the voices themselves (base_voice.py, kokoro_voice.py), the rest of enrollment.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Dict, List, Sequence

import numpy as np

from voxmith.engines.piper_vc import world
from voxmith.engines.piper_vc import base_cache
from voxmith.engines.piper_vc.base_voice import BASE_VOICES, JOE, describe, get_base_voice
from voxmith.speaker import cosine_similarity, get_speaker_encoder

# Said by every candidate to profile it; no benchmark, test, guard or calibration sentence.
PROFILE_SENTENCES = (
    "Every morning the gardener waters the roses before the sun gets too hot.",
    "How many boxes did you carry up the stairs yesterday?",
)
# Candidates whose median F0 is within this ratio of the nearest candidate's count as near in
# pitch (four semitones: the spread of the four female Kokoro styles' medians is about that).
PITCH_SLACK = 1.25


@dataclass(frozen=True)
class BaseProfile:
    name: str
    f0_hz: float  # median F0 over voiced frames of PROFILE_SENTENCES
    embedding: np.ndarray  # GE2E embedding of PROFILE_SENTENCES


@dataclass(frozen=True)
class BaseChoice:
    name: str
    reason: str
    target_f0_hz: float
    candidates: tuple  # (name, f0_hz, similarity) per candidate, in BASE_VOICES order

    def to_conditioning(self) -> Dict[str, np.ndarray]:
        return {"base_voice": np.asarray(self.name, dtype=str),
                "base_choice.reason": np.asarray(self.reason, dtype=str),
                "base_choice.target_f0_hz": np.asarray(self.target_f0_hz, np.float64),
                "base_choice.names": np.asarray([c[0] for c in self.candidates], dtype=str),
                "base_choice.f0_hz": np.asarray([c[1] for c in self.candidates], np.float64),
                "base_choice.similarity": np.asarray([c[2] for c in self.candidates], np.float64)}


def base_name(conditioning: Dict[str, np.ndarray]) -> str:
    """The base voice a conditioning was enrolled with (joe for those made before the choice)."""
    return str(np.asarray(conditioning["base_voice"])) if "base_voice" in conditioning else JOE


def summary(conditioning: Dict[str, np.ndarray]) -> dict:
    """The base voice and why, for `voxmith voices show` and sidecars."""
    name = base_name(conditioning)
    if "base_choice.reason" not in conditioning:
        return {"name": name, "reason": "enrolled before base voices were chosen per voice"}
    return {"name": name, "reason": str(np.asarray(conditioning["base_choice.reason"]))}


def target_f0_hz(features: Sequence[world.WorldFeatures]) -> float:
    """Median F0 over the voiced frames of the target's analysed clips (0 when none is voiced)."""
    f0 = np.concatenate([f.f0[f.voiced] for f in features]) if features else np.zeros(0)
    return float(np.median(f0)) if f0.size else 0.0


def choose(target_f0: float, target_embedding: np.ndarray, profiles: Sequence[BaseProfile],
           slack: float = PITCH_SLACK) -> BaseChoice:
    """The candidate near the target in pitch (within `slack` of the nearest) that is most similar
    to it; joe when the target's pitch is unknown and joe is a candidate."""
    similarity = {p.name: cosine_similarity(p.embedding, target_embedding) for p in profiles}
    record = tuple((p.name, round(p.f0_hz, 1), round(similarity[p.name], 4)) for p in profiles)
    names = [p.name for p in profiles]
    if target_f0 <= 0:
        name = JOE if JOE in names else names[0]
        return BaseChoice(name, "no voiced speech measured in the clips: the default base voice",
                          0.0, record)
    gap = {p.name: abs(np.log(target_f0 / p.f0_hz)) for p in profiles}
    nearest = min(gap.values())
    near = [p for p in profiles if gap[p.name] <= nearest + np.log(slack)]
    best = max(near, key=lambda p: similarity[p.name])
    others = ", ".join(f"{p.name} {similarity[p.name]:.2f}" for p in near if p is not best)
    what = describe(best.name)
    reason = ((f"{what}; " if what else "") + f"median F0 {best.f0_hz:.0f} Hz against the target's {target_f0:.0f} Hz; "
              f"{len(near)} of {len(profiles)} base voices within {slack:g}x of the nearest pitch, "
              f"and of those it sounds most like the target (similarity {similarity[best.name]:.2f}"
              + (f"; {others}" if others else "") + ")")
    return BaseChoice(best.name, reason, target_f0, record)


_profiles: Dict[str, BaseProfile] = {}
_profiles_lock = threading.Lock()


def profile(name: str) -> BaseProfile:
    """The candidate's profile (cached per process, and on disk by base_cache)."""
    with _profiles_lock:
        if name not in _profiles:
            voice = get_base_voice(name)

            def measure() -> dict:
                audio = [voice.speak(s, seed=0).samples for s in PROFILE_SENTENCES]
                f0 = target_f0_hz([world.analyse(x) for x in audio])
                embedding = get_speaker_encoder("cpu").embed(np.concatenate(audio), world.SAMPLE_RATE_HZ)
                return {"f0_hz": float(f0), "embedding": [float(v) for v in np.asarray(embedding)]}

            value = base_cache.remembered(
                "profile", base_cache.identity_of(voice, PROFILE_SENTENCES), measure,
                lambda v: base_cache.finite_numbers([v["f0_hz"]]) and base_cache.finite_numbers(v["embedding"]))
            _profiles[name] = BaseProfile(name, float(value["f0_hz"]),
                                          np.asarray(value["embedding"], dtype=np.float32))
        return _profiles[name]


def choose_for(features: Sequence[world.WorldFeatures], target_embedding: np.ndarray,
               candidates: Sequence[str] = BASE_VOICES, progress=None) -> BaseChoice:
    """The base voice for the target whose clips were analysed as `features`."""
    if len(candidates) == 1:  # nothing to choose: no profile to make
        return BaseChoice(candidates[0], "the only base voice enrollment may choose from",
                          target_f0_hz(features), ((candidates[0], 0.0, 0.0),))
    profiles: List[BaseProfile] = []
    for k, name in enumerate(candidates):
        if progress is not None:
            progress("choosing the base voice", k, len(candidates))
        profiles.append(profile(name))
    if progress is not None:
        progress("choosing the base voice", len(candidates), len(candidates))
    return choose(target_f0_hz(features), target_embedding, profiles)


__all__ = ["PROFILE_SENTENCES", "PITCH_SLACK", "BaseProfile", "BaseChoice", "base_name", "summary",
           "target_f0_hz", "choose", "profile", "choose_for"]
