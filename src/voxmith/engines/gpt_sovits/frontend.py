"""Text -> what the GPT-SoVITS models read: phone ids and BERT features, per piece of text.

`phones_for(text, language)` is the official `get_phones_and_bert` without the model: phone ids
(v2 symbol table), `word2ph` (characters -> phones, only Chinese has it; None otherwise) and the
normalised text. A piece with fewer than 6 phones is read again with a '.' in front, as the official
code does, so very short inputs still give the model some context.
`bert_features(phone_ids, language)`: the 1024 x phones features the t2s model takes; zeros for
every language but Chinese (whose RoBERTa features are not implemented here).
`prepare_text(text, language, method)`: the text cut into pieces (text_split.py), each with its
phones; the pieces the official preprocessing would skip are skipped.

Languages: English ("en"), and Japanese ("ja") when OpenJTalk with its dictionary is installed
(`pip install 'voxmith[ja]'`; japanese.py). In Japanese text, runs of Latin words are read by the
English front end (a simple stand-in for the official language segmenter). "auto" reads text with
kana as Japanese (when available) and Latin text as English; text in another script is refused with
words naming it, as is a language whose front end voxmith does not have (Chinese, Korean,
Cantonese need front ends not built yet), never mispronounced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from voxmith.engines.gpt_sovits import japanese
from voxmith.engines.gpt_sovits.english import default_g2p
from voxmith.engines.gpt_sovits.symbols import phone_ids as to_ids
from voxmith.engines.gpt_sovits.text_split import DEFAULT_METHOD, METHODS, segments
from voxmith.errors import EngineError
from voxmith.text.language import LATIN_SCRIPT_LANGUAGES, detect_languages, language_name

BERT_DIM = 1024
MIN_PHONES = 6  # fewer: read again with a '.' in front
# What the official front ends cover, and which of them voxmith has.
OFFICIAL_LANGUAGES = ("en", "zh", "ja", "ko", "yue")
SUPPORTED_LANGUAGES: Tuple[str, ...] = ("en",) + (("ja",) if japanese.japanese_available() else ())
LANGUAGE_CHOICES = ("auto",) + SUPPORTED_LANGUAGES
# What a setting may name: also the official languages voxmith cannot read, refused with the reason.
LANGUAGE_NAMES_ACCEPTED = ("auto",) + OFFICIAL_LANGUAGES


@dataclass(frozen=True)
class TextPiece:
    """One piece of text as the t2s model reads it."""

    text: str  # the piece as cut from the input
    normalized: str
    phone_ids: Tuple[int, ...]
    language: str

    def bert_features(self) -> np.ndarray:
        return bert_features(self.phone_ids, self.language)


def resolve_language(text: str, language: str) -> str:
    """The front end that reads `text`: `language` itself, or for "auto" the one its letters
    call for. Raises EngineError naming what cannot be read."""
    language = (language or "auto").lower()
    if language == "auto":
        found = detect_languages(text)
        if "ja" in found.languages and "ja" in SUPPORTED_LANGUAGES:
            return "ja"
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
    if language in OFFICIAL_LANGUAGES:
        raise EngineError(f"The gpt-sovits front end for {language_name(language)} ('{language}') is "
                          f"not part of voxmith yet; it speaks {_supported_names()} (language=auto or "
                          f"{'/'.join(SUPPORTED_LANGUAGES)}).")
    raise EngineError(f"Unknown language '{language}' for gpt-sovits: use one of "
                      f"{', '.join(LANGUAGE_CHOICES)}.")


def _supported_names() -> str:
    return ", ".join(language_name(code) for code in SUPPORTED_LANGUAGES)


def phones_for(text: str, language: str = "en") -> Tuple[List[int], Optional[List[int]], str]:
    """(phone ids, word2ph, normalised text) of one piece of text (see the module docstring)."""
    language = resolve_language(text, language)
    text = re.sub(" {2,}", " ", text)
    ids, normalized = _read(text, language)
    if len(ids) < MIN_PHONES:
        ids, normalized = _read("." + text, language)
    return ids, None, normalized


def _read(text: str, language: str) -> Tuple[List[int], str]:
    if language == "en":
        return _english(text)
    ids: List[int] = []
    normalized = []
    for run_language, run in japanese.split_english(text):
        run_ids, run_text = _english(run) if run_language == "en" else _japanese(run)
        ids += run_ids
        normalized.append(run_text)
    return ids, "".join(normalized)


def _english(text: str) -> Tuple[List[int], str]:
    result = default_g2p()(text)
    return to_ids(result.phones), result.normalized


def _japanese(text: str) -> Tuple[List[int], str]:
    phones, normalized = japanese.japanese_phones(text)
    return to_ids(phones), normalized


def bert_features(phone_ids, language: str = "en") -> np.ndarray:
    """(1024, phones) float32: zeros outside Chinese, as the official code gives."""
    return np.zeros((BERT_DIM, len(phone_ids)), dtype=np.float32)


def prepare_text(text: str, language: str = "auto", method: str = DEFAULT_METHOD) -> List[TextPiece]:
    """`text` cut by `method` into the pieces to synthesise, each with its phones."""
    if method not in METHODS:
        raise EngineError(f"Unknown text split method '{method}': use one of {', '.join(METHODS)}.")
    language = resolve_language(text, language)
    pieces = []
    for piece in segments(text, method, language):
        ids, _, normalized = phones_for(piece, language)
        if normalized:
            pieces.append(TextPiece(piece, normalized, tuple(ids), language))
    return pieces
