"""Word error rate between what should have been said and what a recogniser heard.

Both sides go through `normalize_text`, then lower case without punctuation, so "Dr. Smith paid
$5" and "doctor smith paid five dollars" match. The alignment itself is jiwer's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List

import jiwer

from voxmith.text.normalize import normalize_text


def words_for_scoring(text: str) -> List[str]:
    text = normalize_text(text).lower()
    text = re.sub(r"[-‐]", " ", text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


@dataclass(frozen=True)
class WordErrors:
    wer: float
    substitutions: int
    deletions: int  # words of the reference that were not heard (skipped words)
    insertions: int  # words heard that were not in the reference (repeats, babble)
    reference_words: int


def word_error_rate(reference: str, hypothesis: str) -> WordErrors:
    ref, hyp = words_for_scoring(reference), words_for_scoring(hypothesis)
    if not ref:
        return WordErrors(float(len(hyp) > 0), 0, 0, len(hyp), 0)
    if not hyp:
        return WordErrors(1.0, 0, len(ref), 0, len(ref))
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    return WordErrors(out.wer, out.substitutions, out.deletions, out.insertions, len(ref))
