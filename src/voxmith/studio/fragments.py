"""A sentence cut by a pause mark (`He waited [pause 1s] and waited.`) judged as one sentence.

The book reads each piece of such a sentence on its own (the pause goes between them) and ranks each
take as a sentence; but Whisper mishears a few words heard alone far more often than the same words
in a sentence, so short pieces landed on the review list whatever the voice said. A piece whose chosen
take fails only on its words (a word skipped or too many errors; never a naturalness failure, which
joining cannot excuse) is judged again joined with the other pieces of its sentence: their chosen
takes with a short gap, transcribed at once against the whole sentence's text, under the rules of
any sentence (no word skipped, word error rate within the limit). So the check is exactly as strict as
for an uncut sentence of that length, and a normal sentence is judged as before.

Not here: making the takes (studio/speech.Speaker), the book's files (studio/book.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from voxmith.asr import Transcriber
from voxmith.studio.ranking import RankingSettings, TakeScores, refusal
from voxmith.text import word_error_rate

# Between the pieces when they are heard joined: long enough that words do not run together, short
# enough that Whisper hears one sentence (the book keeps the pause the text asked for).
JOIN_GAP_S = 0.3


@dataclass(frozen=True)
class JoinedCheck:
    text: str  # the whole sentence
    transcript: str  # what Whisper heard in the joined pieces
    wer: float
    deletions: int
    refused: Optional[str]  # why the joined sentence fails, None when it passes

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}


def fails_on_words_only(scores: TakeScores, settings: RankingSettings) -> bool:
    """Whether the take is refused, and refused for its words alone (its naturalness passes)."""
    if refusal(scores, settings) is None:
        return False
    return refusal(dataclasses.replace(scores, wer=None, deletions=0, insertions=0), settings) is None


def judge_joined(speech: Sequence[np.ndarray], sample_rate_hz: int, texts: Sequence[str],
                 transcriber: Transcriber, settings: RankingSettings) -> JoinedCheck:
    """The pieces' speech (pauses left out) heard as one sentence against their texts joined."""
    gap = np.zeros(int(JOIN_GAP_S * sample_rate_hz), np.float32)
    parts = []
    for k, piece in enumerate(speech):
        parts += [gap, piece] if k else [piece]
    joined = np.concatenate(parts).astype(np.float32)
    text = " ".join(t.strip() for t in texts)
    transcript = transcriber.transcribe(joined, sample_rate_hz).text
    errors = word_error_rate(text, transcript)
    # The same rules as ranking.refusal's for words, on the whole sentence.
    as_take = TakeScores(0.0, errors.wer, errors.deletions, errors.insertions, transcript, 0.0)
    return JoinedCheck(text, transcript, errors.wer, errors.deletions, refusal(as_take, settings))
