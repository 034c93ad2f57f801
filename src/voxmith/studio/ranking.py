"""Scoring takes the way TorToiSe's CLVP/CVVP pass ranks them, with tools that run offline:
speaker similarity (GE2E cosine to the voice) and intelligibility (Whisper transcript vs the text).

A take that skips or repeats words shows up as deletions/insertions in the word error rate; the
studio re-generates such takes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from voxmith.asr import Transcriber
from voxmith.speaker import SpeakerEncoder, cosine_similarity
from voxmith.text import word_error_rate


@dataclass(frozen=True)
class TakeScores:
    similarity: float  # cosine to the voice's speaker embedding, -1..1
    wer: Optional[float]  # word error rate of the transcript vs the intended text (None: no text)
    deletions: int
    insertions: int
    transcript: str
    score: float  # combined: similarity - intelligibility_weight * wer

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class RankingSettings:
    intelligibility_weight: float = 1.0  # SECS points traded per unit of WER
    max_wer: float = 0.15  # a best take worse than this is re-generated
    regenerate_limit: int = 2  # extra takes per sentence at most


def score_take(samples: np.ndarray, sample_rate_hz: int, text: Optional[str], speaker_embedding: np.ndarray,
               encoder: SpeakerEncoder, transcriber: Optional[Transcriber],
               intelligibility_weight: float = 1.0) -> TakeScores:
    similarity = cosine_similarity(encoder.embed(samples, sample_rate_hz), speaker_embedding)
    if transcriber is None or text is None:
        return TakeScores(similarity, None, 0, 0, "", similarity)
    transcript = transcriber.transcribe(samples, sample_rate_hz).text
    errors = word_error_rate(text, transcript)
    return TakeScores(similarity, errors.wer, errors.deletions, errors.insertions, transcript,
                      similarity - intelligibility_weight * errors.wer)


def needs_regeneration(scores: TakeScores, settings: RankingSettings) -> bool:
    """Missing words are the failure users hate most: any deletion, or too many errors overall."""
    return scores.wer is not None and (scores.deletions > 0 or scores.wer > settings.max_wer)
