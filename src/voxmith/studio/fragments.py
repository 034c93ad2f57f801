"""Sentences Whisper cannot judge alone: the pieces of a sentence cut by a pause mark (`He waited
[pause 1s] and waited.`), and very short sentences ("Two.", a chapter's title), heard with a neighbour.

The book reads each piece of such a sentence on its own (the pause goes between them) and ranks each
take as a sentence; but Whisper mishears a few words heard alone far more often than the same words
in a sentence, so short pieces landed on the review list whatever the voice said. A piece whose chosen
take fails only on its words (a word skipped or too many errors; never a naturalness failure, which
joining cannot excuse) is judged again joined with the other pieces of its sentence: their chosen
takes with a short gap, transcribed at once against the whole sentence's text, under the rules of
any sentence (no word skipped, word error rate within the limit). So the check is exactly as strict as
for an uncut sentence of that length, and a normal sentence is judged as before.

A sentence of one or two words ("Two." heard alone as "Tim.") is the same case: when it fails only on
its words it is heard again joined with its neighbour (the next sentence of its chapter, or the
previous one when it is last; a neighbour cut by pause marks comes whole). The joined text must pass
the rules of any sentence, and the short sentence's own words, aligned in that transcript, must pass
them too (no word skipped, its own error rate within the limit): a long neighbour heard right cannot
cover a short sentence said wrong. The same check stands in for the short sentence's retries
(`accepts_with_neighbour`): a take it accepts is not made again, so a title said right no longer
uses every retry because Whisper cannot hear it alone. The book makes the neighbour first.

Not here: making the takes (studio/speech.Speaker), the book's files (studio/book.py).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from voxmith.asr import Transcriber
from voxmith.studio.ranking import RankingSettings, TakeScores, refusal
from voxmith.studio.speech import sentence_piece
from voxmith.text import word_error_rate, word_errors_by_part
from voxmith.text.book import BookSentence

# Between the pieces when they are heard joined: long enough that words do not run together, short
# enough that Whisper hears one sentence (the book keeps the pause the text asked for).
JOIN_GAP_S = 0.3
# A sentence of at most this many written words is judged again with its neighbour: Whisper needs
# context to hear one or two words, a chapter title ("Two.", "Chapter 12.") above all.
SHORT_SENTENCE_WORDS = 2


@dataclass(frozen=True)
class Join:
    """Book sentences heard together, in order, and the ones whose verdict that decides."""
    sentences: List[BookSentence]
    own: Optional[int] = None  # a short sentence's index (only its verdict); None: the pieces of one sentence

    @property
    def judged(self) -> List[int]:
        return list(range(len(self.sentences))) if self.own is None else [self.own]


def joins(sentences: Sequence[BookSentence]) -> List[Join]:
    """What a chapter's sentences are judged joined as: each sentence cut by pause marks (its pieces),
    and each short uncut sentence with its neighbour (the next sentence, else the previous one)."""
    units, current = [], []  # the written sentences, each as its pieces
    for sentence in sentences:
        current.append(sentence)
        if not sentence.continues:
            units.append(current)
            current = []
    if current:
        units.append(current)
    found = [Join(unit) for unit in units if len(unit) > 1]
    for u, unit in enumerate(units):
        if len(unit) > 1 or len(units) < 2 or not is_short(unit[0].text):
            continue
        if u + 1 < len(units):
            found.append(Join(unit + units[u + 1], own=0))
        else:
            found.append(Join(units[u - 1] + unit, own=len(units[u - 1])))
    return found


def short_joins(sentences: Sequence[BookSentence]) -> dict:
    """Each short sentence's id -> its join with its neighbour."""
    return {j.sentences[j.own].id: j for j in joins(sentences) if j.own is not None}


def accepts_with_neighbour(join: Join, neighbour_speech: Dict[int, np.ndarray], sample_rate_hz: int,
                           transcriber: Transcriber, settings: RankingSettings) -> Callable:
    """For `Speaker.speak_sentence(accept=)`: whether a take of the join's short sentence that fails
    only on its words passes heard with its neighbour (`neighbour_speech`: index in the join -> its
    stored speech). The take is trimmed as the book keeps it."""
    texts = [s.text for s in join.sentences]

    def accept(take, scores: TakeScores) -> bool:
        if not fails_on_words_only(scores, settings):
            return False
        trimmed = sentence_piece(take.samples, sample_rate_hz, 0)
        speech = [trimmed if k == join.own else neighbour_speech[k] for k in range(len(texts))]
        return judge_joined(speech, sample_rate_hz, texts, transcriber, settings, own=join.own).refused is None

    return accept


def is_short(text: str) -> bool:
    return len(re.findall(r"\w+", text)) <= SHORT_SENTENCE_WORDS


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
                 transcriber: Transcriber, settings: RankingSettings, own: Optional[int] = None) -> JoinedCheck:
    """The pieces' speech (pauses left out) heard as one sentence against their texts joined.
    `own`: the short sentence judged with its neighbour; its own words must pass the rules too."""
    gap = np.zeros(int(JOIN_GAP_S * sample_rate_hz), np.float32)
    parts = []
    for k, piece in enumerate(speech):
        parts += [gap, piece] if k else [piece]
    joined = np.concatenate(parts).astype(np.float32)
    text = " ".join(t.strip() for t in texts)
    transcript = transcriber.transcribe(joined, sample_rate_hz).text
    errors = word_error_rate(text, transcript)
    # The same rules as ranking.refusal's for words, on the whole sentence.
    refused = refusal(TakeScores(0.0, errors.wer, errors.deletions, errors.insertions, transcript, 0.0), settings)
    if refused is None and own is not None:
        mine = word_errors_by_part(texts, transcript)[own]
        refused = refusal(TakeScores(0.0, mine.wer, mine.deletions, mine.insertions, transcript, 0.0), settings)
        refused = refused and f"{refused} in '{texts[own].strip()}'"
    return JoinedCheck(text, transcript, errors.wer, errors.deletions, refused)
