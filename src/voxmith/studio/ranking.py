"""Scoring takes the way TorToiSe's CLVP/CVVP pass ranks them, with tools that run offline:
speaker similarity (GE2E cosine to the voice), intelligibility (Whisper transcript vs the text)
and naturalness (DistillMOS, voxmith.quality).

A take that skips or repeats words shows up as deletions/insertions in the word error rate; a
take whose naturalness collapses (buzz, clicks, babble) shows up as a low MOS. The studio refuses
both: such a take is chosen only when every take is refused, and it is re-generated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

import numpy as np

from voxmith.asr import Transcriber
from voxmith.errors import VoxmithError
from voxmith.speaker import SpeakerEncoder, cosine_similarity
from voxmith.text import word_error_rate
from voxmith.text.language import reads_as_latin


@dataclass(frozen=True)
class TakeScores:
    similarity: float  # cosine to the voice's speaker embedding, -1..1
    wer: Optional[float]  # word error rate of the transcript vs the intended text (None: no text)
    deletions: int
    insertions: int
    transcript: str
    score: float  # combined: similarity - intelligibility_weight * wer
    naturalness: Optional[float] = None  # DistillMOS 1-5 (None: not measured)

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class RankingSettings:
    intelligibility_weight: float = 1.0  # SECS points traded per unit of WER
    max_wer: float = 0.15  # a best take worse than this is re-generated
    regenerate_limit: int = 2  # extra takes per sentence at most
    # Naturalness guards (DistillMOS, 1-5; real recordings score ~4, the shared voices 3.3-4.5).
    # Below the floor a take sounds broken whatever the others do (piper-vc's weakest voice's
    # weakest sentences score ~1.35, so a voice is not re-generated on every sentence); a take
    # more than `naturalness_drop` below the sentence's most natural take has collapsed relative
    # to what the engine can do for that voice and sentence.
    min_naturalness: float = 1.3
    naturalness_drop: float = 0.6

    def validate(self) -> None:
        """Bounds every front end shares (the HTTP API's are the same): a retry limit in the
        millions would regenerate one sentence for hours."""
        if not 0.0 <= float(self.max_wer) <= 1.0:
            raise VoxmithError(f"The word-error limit (max_wer, --max-wer) must be between 0 and 1, got {self.max_wer}.")
        if not 0 <= int(self.regenerate_limit) <= 10:
            raise VoxmithError(f"Retries (--retries) must be between 0 and 10, got {self.regenerate_limit}.")


def score_take(samples: np.ndarray, sample_rate_hz: int, text: Optional[str], speaker_embedding: np.ndarray,
               encoder: SpeakerEncoder, transcriber: Optional[Transcriber],
               intelligibility_weight: float = 1.0, naturalness_model=None) -> TakeScores:
    """`naturalness_model`: a voxmith.quality.NaturalnessModel, or None not to measure it."""
    similarity = cosine_similarity(encoder.embed(samples, sample_rate_hz), speaker_embedding)
    mos = naturalness_model.score(samples, sample_rate_hz) if naturalness_model is not None else None
    # The recogniser and the word error rate are English: text in another script (an engine speaking
    # Japanese) is ranked on similarity and naturalness only, never refused for "errors".
    if transcriber is None or text is None or not reads_as_latin(text):
        return TakeScores(similarity, None, 0, 0, "", similarity, mos)
    transcript = transcriber.transcribe(samples, sample_rate_hz).text
    errors = word_error_rate(text, transcript)
    return TakeScores(similarity, errors.wer, errors.deletions, errors.insertions, transcript,
                      similarity - intelligibility_weight * errors.wer, mos)


def refusal(scores: TakeScores, settings: RankingSettings, best_naturalness: Optional[float] = None) -> Optional[str]:
    """Why a take must not be chosen, in a few words, or None if it may be.
    `best_naturalness`: the highest MOS among the sentence's takes (for the relative check)."""
    if scores.wer is not None and scores.deletions > 0:
        return f"skips {scores.deletions} word(s)"
    if scores.wer is not None and scores.wer > settings.max_wer:
        return f"word error rate {scores.wer:.0%} above {settings.max_wer:.0%}"
    if scores.naturalness is not None:
        if scores.naturalness < settings.min_naturalness:
            return f"naturalness {scores.naturalness:.2f} below the floor {settings.min_naturalness:.2f}"
        if best_naturalness is not None and scores.naturalness < best_naturalness - settings.naturalness_drop:
            return (f"naturalness {scores.naturalness:.2f} collapsed ({best_naturalness:.2f} for the best take, "
                    f"allowed drop {settings.naturalness_drop:.2f})")
    return None


def choose_take(scores: Sequence[TakeScores], settings: RankingSettings) -> tuple[int, List[Optional[str]]]:
    """(index of the chosen take, each take's refusal reason or None). The highest combined
    score among the takes not refused wins; when all are refused, the highest combined score."""
    measured = [s.naturalness for s in scores if s.naturalness is not None]
    best_mos = max(measured) if measured else None
    reasons = [refusal(s, settings, best_mos) for s in scores]
    allowed = [k for k, r in enumerate(reasons) if r is None] or list(range(len(scores)))
    return max(allowed, key=lambda k: scores[k].score), reasons


def needs_regeneration(scores: TakeScores, settings: RankingSettings) -> bool:
    """Missing words are the failure users hate most: any deletion, or too many errors overall;
    a take below the naturalness floor is re-generated too."""
    return refusal(scores, settings) is not None
