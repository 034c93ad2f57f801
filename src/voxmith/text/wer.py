"""Word error rate between what should have been said and what a recogniser heard.

Both sides go through `normalize_text`, then lower case without punctuation, so "Dr. Smith paid
$5" and "doctor smith paid five dollars" match. The alignment itself is jiwer's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Sequence

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


def word_errors_by_part(parts: Sequence[str], hypothesis: str) -> List[WordErrors]:
    """The errors of one hypothesis against several texts said one after the other (a short sentence
    heard with its neighbour), shared out to the text each reference word belongs to. A word heard
    between two texts (an insertion at their boundary) counts against both: no part is let off an
    error that might be its own."""
    words = [words_for_scoring(part) for part in parts]
    owner = [k for k, part in enumerate(words) for _ in part]  # the part of each reference word
    hyp = words_for_scoring(hypothesis)
    counts = [{"substitute": 0, "delete": 0, "insert": 0} for _ in parts]
    if not owner:  # no words to say at all: whatever was heard is inserted
        return [WordErrors(float(len(hyp) > 0), 0, 0, len(hyp), 0) for _ in parts]
    if not hyp:
        chunks = [("delete", 0, len(owner), 0)]
    else:
        out = jiwer.process_words(" ".join(" ".join(w) for w in words if w), " ".join(hyp))
        chunks = [(c.type, c.ref_start_idx, c.ref_end_idx, c.hyp_end_idx - c.hyp_start_idx)
                  for c in out.alignments[0]]
    for kind, start, end, heard in chunks:
        if kind in ("substitute", "delete"):
            for i in range(start, end):
                counts[owner[i]][kind] += 1
        elif kind == "insert":  # heard before reference word `start`
            for k in {owner[i] for i in (start - 1, start) if 0 <= i < len(owner)}:
                counts[k]["insert"] += heard
    result = []
    for count, part in zip(counts, words):
        errors = count["substitute"] + count["delete"] + count["insert"]
        wer = errors / len(part) if part else float(errors > 0)
        result.append(WordErrors(wer, count["substitute"], count["delete"], count["insert"], len(part)))
    return result
