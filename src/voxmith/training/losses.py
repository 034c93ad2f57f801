"""The losses a training task minimises, as its engine declares them, and their weights in a run.

The loop names no engine's losses. An engine's model returns a dict of scalar losses from its
forward; the engine declares each one as a `LossTerm` (the key it returns it under, a default
weight, what it measures in words), both on the engine class (`Engine.training_losses`, read before
any model is built: `train init`, the CLI's `--loss-weight`, the web UI) and on the task the loop
trains (`TrainingTask.losses`). The run's config holds one weight per term (`losses: weights:`);
the loop minimises the weighted sum and logs each term as `<key>_loss` (metrics.csv, plots,
TensorBoard).

A task that trains in stages (several models one after another, such as GPT-SoVITS' SoVITS then
GPT) gives each term its `stage`: the key becomes "stage.name" (e.g. "sovits.mel", "gpt.ce"), so one
run config weights every stage's losses and each stage's task declares its own subset.

Run configs written before engines declared their losses had `text_weight` and `mel_weight` (the
names of TorToiSe's two losses, used for every engine). They are read as weights named "text" and
"mel" and marked as old (`LEGACY_NAMES`): a term takes its weight under its own key or one of its
`aliases` (piper-vc's "cepstral" loss was called "mel"), and an old name that no term claims is
ignored rather than refused.

Not here: the loop that applies the weights (loop.py), the config file (config.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

from voxmith.assignments import split_assignments
from voxmith.errors import VoxmithError

# What a config written before declared losses named its two weights (text_weight, mel_weight).
LEGACY_NAMES = ("text", "mel")


@dataclass(frozen=True)
class LossTerm:
    """One loss a model's forward returns, and how much it counts by default."""

    name: str  # the key in the forward's dict (with `stage`: "stage.name")
    weight: float  # default weight in the total that is minimised
    help: str  # what it measures, for the config's comment and the shells' help
    stage: str = ""  # the training stage it belongs to, for tasks trained in stages
    aliases: Tuple[str, ...] = ()  # names it had in older run configs

    @property
    def key(self) -> str:
        return f"{self.stage}.{self.name}" if self.stage else self.name

    @property
    def column(self) -> str:
        """Its column in metrics.csv."""
        return f"{self.key}_loss"


def default_weights(terms: Iterable[LossTerm]) -> Dict[str, float]:
    return {t.key: float(t.weight) for t in terms}


def describe(terms: Sequence[LossTerm]) -> str:
    """'text (default 0.01: text-prediction cross-entropy), mel (...)', for messages and help."""
    return ", ".join(f"{t.key} (default {t.weight:g}: {t.help})" for t in terms) or "none declared"


def weight_problems(terms: Sequence[LossTerm], weights: Mapping[str, float], engine: str = "the engine",
                    legacy: Sequence[str] = ()) -> List[str]:
    """Everything wrong with `weights` for `terms`, one sentence each: names the engine's model does
    not return, negative or non-finite values, nothing left to learn from."""
    problems = []
    unknown = _unknown(terms, weights, legacy)
    if unknown:
        problems.append(f"{engine} has no loss named {', '.join(unknown)} (loss weights name its losses: "
                        f"{describe(terms)}).")
    bad = [name for name, value in weights.items() if not math.isfinite(value) or value < 0]
    if bad:
        problems.append(f"loss weight(s) {', '.join(bad)} must be 0 or more.")
    if terms and not problems and not any(w > 0 for w in _weights(terms, weights).values()):
        problems.append("every loss weight is 0, so nothing would be learned.")
    return problems


def resolve(terms: Sequence[LossTerm], weights: Mapping[str, float], legacy: Sequence[str] = ()) -> Dict[str, float]:
    """key -> weight for every term: the config's weight under its key or an alias, else its default.
    Raises VoxmithError for weights that name no term (old names in `legacy` excepted)."""
    unknown = _unknown(terms, weights, legacy)
    if unknown:
        raise VoxmithError(f"The training task has no loss named {', '.join(unknown)} (the run's loss weights "
                           f"name its losses: {describe(terms)}).")
    return _weights(terms, weights)


def _unknown(terms: Sequence[LossTerm], weights: Mapping[str, float], legacy: Sequence[str]) -> List[str]:
    claimed = {t.key for t in terms} | {a for t in terms for a in t.aliases}
    return [name for name in weights if name not in claimed and name not in legacy]


def _weights(terms: Sequence[LossTerm], weights: Mapping[str, float]) -> Dict[str, float]:
    resolved = {}
    for term in terms:
        for name in (term.key, *term.aliases):
            if name in weights:
                resolved[term.key] = float(weights[name])
                break
        else:
            resolved[term.key] = float(term.weight)
    return resolved


def parse_assignments(items: Iterable[str], terms: Sequence[LossTerm], engine: str) -> Dict[str, float]:
    """`NAME=VALUE` strings (the shells' --loss-weight) as weights under the terms' keys, refusing
    names `engine` has no loss for and values that are not numbers, with a message listing its losses."""
    weights: Dict[str, float] = {}
    for name, value in split_assignments(items, "Loss weight", f"{engine}'s losses are {describe(terms)}.").items():
        try:
            weights[name] = float(value)
        except ValueError:
            raise VoxmithError(f"Loss weight '{name}' must be a number, not '{value}'.") from None
    problems = weight_problems(terms, weights, engine)
    if problems:
        raise VoxmithError(problems[0])
    by_alias = {a: t.key for t in terms for a in t.aliases}
    return {by_alias.get(name, name): value for name, value in weights.items()}  # each under its current key


__all__ = ["LEGACY_NAMES", "LossTerm", "default_weights", "describe", "parse_assignments", "resolve",
           "weight_problems"]
