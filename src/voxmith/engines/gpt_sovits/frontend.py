"""Text -> what the GPT-SoVITS models read: phone ids and BERT features, per piece of text.

`read_text(text, language)` is the official `get_phones_and_bert` without the model: the text cut
into runs of one language each, each run's phones (v2 symbol table) and normalised text, and for
Chinese runs `word2ph` (phones per character, which spreads the BERT features over the phones). A
piece with fewer than 6 phones is read again with a '.' in front, as the official code does, so
very short inputs still give the model some context. `phones_for` is its (ids, word2ph,
normalised text) view.
`bert_features(runs, bert)`: the 1024 x phones features the t2s model takes: RoBERTa features of
the Chinese runs (chinese_bert.py), zeros for every other language, as the official code gives.
`prepare_text(text, language, method)`: the text cut into pieces (text_split.py), each with its
phones; the pieces the official preprocessing would skip are skipped.

Languages: English ("en"); Japanese ("ja") when OpenJTalk with its dictionary is installed
(`pip install 'voxmith[ja]'`; japanese.py); Chinese ("zh", Mandarin) when jieba and pypinyin are
installed (`pip install 'voxmith[zh]'`; chinese.py; polyphones by the G2PW model when the caller gives
one, g2pw.py, else by pypinyin); Cantonese ("yue", asked for by name: its characters are those of
Chinese) when ToJyutping is installed (`pip install 'voxmith[yue]'`; cantonese.py). In Japanese,
Chinese and Cantonese text, runs of Latin
words are read by the English front end (a simple stand-in for the official language segmenter,
which needs a downloaded language-identification model). "auto" reads text with kana as Japanese
(when available), text with Chinese characters as Chinese (when available) and Latin text as
English; text in another script is refused with words naming it, as is a language whose front
end voxmith does not have or that is not installed (Korean needs a front end not built yet), never
mispronounced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from voxmith.engines.gpt_sovits import cantonese, chinese, japanese
from voxmith.engines.gpt_sovits.chinese_bert import ChineseBert
from voxmith.engines.gpt_sovits.english import default_g2p
from voxmith.engines.gpt_sovits.g2pw import G2PW
from voxmith.engines.gpt_sovits.symbols import phone_ids as to_ids
from voxmith.engines.gpt_sovits.text_split import DEFAULT_METHOD, METHODS, segments
from voxmith.errors import EngineError
from voxmith.text.language import LATIN_SCRIPT_LANGUAGES, detect_languages, language_name

BERT_DIM = 1024
MIN_PHONES = 6  # fewer: read again with a '.' in front
# What the official front ends cover, and which of them voxmith has.
OFFICIAL_LANGUAGES = ("en", "zh", "ja", "ko", "yue")
SUPPORTED_LANGUAGES: Tuple[str, ...] = (("en",) + (("ja",) if japanese.japanese_available() else ())
                                         + (("zh",) if chinese.chinese_available() else ())
                                         + (("yue",) if cantonese.cantonese_available() else ()))
LANGUAGE_CHOICES = ("auto",) + SUPPORTED_LANGUAGES
# What a setting may name: also the official languages voxmith cannot read, refused with the reason.
LANGUAGE_NAMES_ACCEPTED = ("auto",) + OFFICIAL_LANGUAGES


@dataclass(frozen=True)
class TextRun:
    """A stretch of one language inside a piece: what its BERT features need."""

    language: str
    normalized: str
    phone_count: int
    word2ph: Optional[Tuple[int, ...]] = None  # Chinese: phones per character of `normalized`


@dataclass(frozen=True)
class TextReading:
    phone_ids: Tuple[int, ...]
    normalized: str
    runs: Tuple[TextRun, ...]

    @property
    def needs_bert(self) -> bool:
        return any(run.language == "zh" for run in self.runs)


@dataclass(frozen=True)
class TextPiece:
    """One piece of text as the t2s model reads it."""

    text: str  # the piece as cut from the input
    normalized: str
    phone_ids: Tuple[int, ...]
    language: str
    runs: Tuple[TextRun, ...] = ()


def resolve_language(text: str, language: str) -> str:
    """The front end that reads `text`: `language` itself, or for "auto" the one its letters
    call for. Raises EngineError naming what cannot be read."""
    language = (language or "auto").lower()
    if language == "auto":
        found = detect_languages(text)
        if "ja" in found.languages and "ja" in SUPPORTED_LANGUAGES:
            return "ja"
        if "zh" in found.languages and "zh" in SUPPORTED_LANGUAGES:
            return "zh"
        others = [code for code in found.languages if code not in LATIN_SCRIPT_LANGUAGES]
        if others:
            code = others[0]
            words = ", ".join(found.words.get(code, [])[:5])
            raise EngineError(f"The gpt-sovits engine cannot read {language_name(code)} yet "
                              f"({words}): its front end speaks {_supported_names()}.")
        return "en"
    if language in SUPPORTED_LANGUAGES:
        return language
    if language == "ja":
        raise EngineError(f"The gpt-sovits engine cannot read Japanese here: {japanese.unavailable_reason()}.")
    if language == "zh":
        raise EngineError(f"The gpt-sovits engine cannot read Chinese here: {chinese.unavailable_reason()}.")
    if language == "yue":
        raise EngineError(f"The gpt-sovits engine cannot read Cantonese here: {cantonese.unavailable_reason()}.")
    if language in OFFICIAL_LANGUAGES:
        raise EngineError(f"The gpt-sovits front end for {language_name(language)} ('{language}') is "
                          f"not part of voxmith yet; it speaks {_supported_names()} (language=auto or "
                          f"{'/'.join(SUPPORTED_LANGUAGES)}).")
    raise EngineError(f"Unknown language '{language}' for gpt-sovits: use one of "
                      f"{', '.join(LANGUAGE_CHOICES)}.")


def _supported_names() -> str:
    return ", ".join(language_name(code) for code in SUPPORTED_LANGUAGES)


def read_text(text: str, language: str = "en", g2pw: Optional[G2PW] = None) -> TextReading:
    """Phones, normalised text and language runs of one piece of text (see the module docstring);
    Chinese polyphones by `g2pw` when given, else by pypinyin."""
    language = resolve_language(text, language)
    text = re.sub(" {2,}", " ", text)
    reading = _read(text, language, g2pw)
    if len(reading.phone_ids) < MIN_PHONES:
        reading = _read("." + text, language, g2pw)
    return reading


def phones_for(text: str, language: str = "en") -> Tuple[List[int], Optional[List[int]], str]:
    """(phone ids, word2ph, normalised text) of one piece of text; word2ph only for text read as
    Chinese alone (None otherwise)."""
    reading = read_text(text, language)
    word2ph = None
    if len(reading.runs) == 1 and reading.runs[0].word2ph is not None:
        word2ph = list(reading.runs[0].word2ph)
    return list(reading.phone_ids), word2ph, reading.normalized


def _read(text: str, language: str, g2pw: Optional[G2PW] = None) -> TextReading:
    if language == "en":
        runs = [("en", text)]
    else:  # Latin words inside Japanese or Chinese text are read as English
        runs = [(language if run_language != "en" else "en", run) for run_language, run in japanese.split_english(text)]
    ids: List[int] = []
    read_runs = []
    for run_language, run in runs:
        if run_language == "zh":
            run_ids, run_text, word2ph = _chinese(run, g2pw)
        else:
            run_ids, run_text, word2ph = _READERS[run_language](run)
        ids += run_ids
        read_runs.append(TextRun(run_language, run_text, len(run_ids), word2ph))
    return TextReading(tuple(ids), "".join(r.normalized for r in read_runs), tuple(read_runs))


def _english(text: str) -> Tuple[List[int], str, None]:
    result = default_g2p()(text)
    return to_ids(result.phones), result.normalized, None


def _japanese(text: str) -> Tuple[List[int], str, None]:
    phones, normalized = japanese.japanese_phones(text)
    return to_ids(phones), normalized, None


def _chinese(text: str, g2pw: Optional[G2PW] = None) -> Tuple[List[int], str, Tuple[int, ...]]:
    phones, word2ph, normalized = chinese.chinese_phones(text, g2pw)
    return to_ids(phones), normalized, word2ph


def _cantonese(text: str) -> Tuple[List[int], str, None]:
    phones, _, normalized = cantonese.cantonese_phones(text)
    return to_ids(phones), normalized, None  # no BERT features for Cantonese (zeros, as officially)


_READERS = {"en": _english, "ja": _japanese, "yue": _cantonese}


def bert_features(runs: Sequence[TextRun], bert: Optional[ChineseBert] = None) -> np.ndarray:
    """(1024, phones) float32 of the runs of one or more readings, in order: RoBERTa features of
    Chinese runs (one per character, repeated over its phones), zeros elsewhere."""
    parts = []
    for run in runs:
        if run.language == "zh" and run.phone_count:
            if bert is None:
                raise EngineError("Chinese text needs the chinese-roberta-wwm-ext-large model for its BERT features.")
            parts.append(bert.phone_features(run.normalized, run.word2ph))
        else:
            parts.append(np.zeros((BERT_DIM, run.phone_count), dtype=np.float32))
    return np.concatenate(parts, axis=1) if parts else np.zeros((BERT_DIM, 0), dtype=np.float32)


def prepare_text(text: str, language: str = "auto", method: str = DEFAULT_METHOD,
                 g2pw: Optional[G2PW] = None) -> List[TextPiece]:
    """`text` cut by `method` into the pieces to synthesise, each with its phones (Chinese
    polyphones by `g2pw` when given)."""
    if method not in METHODS:
        raise EngineError(f"Unknown text split method '{method}': use one of {', '.join(METHODS)}.")
    language = resolve_language(text, language)
    pieces = []
    for piece in segments(text, method, language):
        reading = read_text(piece, language, g2pw)
        if reading.normalized:
            pieces.append(TextPiece(piece, reading.normalized, reading.phone_ids, language, reading.runs))
    return pieces
