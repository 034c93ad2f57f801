"""TorToiSe's text front end: text cleaning and BPE token ids.

The released TorToiSe models were trained on ids produced by a specific pipeline, so this module
reproduces it exactly (SPEC §4):

1. "english" cleaning: transliterate to ASCII (unidecode), lowercase, spell out numbers the way the
   official code does (inflect), expand a fixed list of abbreviations, collapse whitespace and drop
   double quotes. The "basic" cleaning only lowercases and collapses whitespace.
2. Every space becomes the literal added token ``[SPACE]``.
3. The Hugging Face ``tokenizers`` BPE model from ``data/tokenizer.json`` maps the string to ids.
   Characters outside its alphabet (digits that survive cleaning, ``[``, ``]``, ``&`` ...) become
   ``[UNK]`` (id 1).

`text_tokens_for_tts` adds what the official ``tts()`` does on top: one trailing 0 (``[STOP]``)
and a length limit.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import torch

DATA_DIR = Path(__file__).resolve().parent / "data"
TOKENIZER_FILE = DATA_DIR / "tokenizer.json"

STOP_ID = 0
UNK_ID = 1
SPACE_ID = 2
SPACE_TOKEN = "[SPACE]"

# The official tts() asserts that the padded token row is shorter than this.
MAX_TEXT_TOKENS = 400


class TextTooLongError(ValueError):
    """The text encodes to more tokens than TorToiSe accepts in one segment."""


# --------------------------------------------------------------------------------------------
# Number spelling (the order of the substitutions matters and follows the official cleaner).

# A digit, then digits/commas, then a digit: thousands separators to drop ("1,000" -> "1000").
_GROUPED_DIGITS = re.compile(r"([0-9][0-9,]+[0-9])")
# Never matches after unidecode turns "£" into "PS"; kept because the official pipeline has it.
_POUNDS = re.compile(r"£([0-9,]*[0-9]+)")
_DOLLARS = re.compile(r"\$([0-9.,]*[0-9]+)")
_DECIMAL = re.compile(r"([0-9]+\.[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_INTEGER = re.compile(r"[0-9]+")
_WHITESPACE = re.compile(r"\s+")

# (abbreviation, expansion), applied in this order; "mrs" must precede "mr".
_ABBREVIATIONS = [
    (re.compile(r"\b" + abbr + r"\.", re.IGNORECASE), full)
    for abbr, full in (
        ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"),
        ("co", "company"), ("jr", "junior"), ("maj", "major"), ("gen", "general"),
        ("drs", "doctors"), ("rev", "reverend"), ("lt", "lieutenant"), ("hon", "honorable"),
        ("sgt", "sergeant"), ("capt", "captain"), ("esq", "esquire"), ("ltd", "limited"),
        ("col", "colonel"), ("ft", "fort"),
    )
]


@lru_cache(maxsize=1)
def _inflect_engine():
    # Imported lazily: inflect is slow to import and only the english cleaner needs it.
    import inflect

    return inflect.engine()


def _words(number, **kwargs) -> str:
    return _inflect_engine().number_to_words(number, **kwargs)


def _unit(count: int, singular: str) -> str:
    return singular if count == 1 else singular + "s"


def _spell_dollars(match: re.Match) -> str:
    amount = match.group(1)
    pieces = amount.split(".")
    if len(pieces) > 2:  # e.g. "$1.2.3": the official code gives up and appends the unit
        return amount + " dollars"
    # The official code would raise on a stray comma here ("$,5"); ignoring commas is kinder.
    whole_text = pieces[0].replace(",", "")
    frac_text = pieces[1].replace(",", "") if len(pieces) > 1 else ""
    dollars = int(whole_text) if whole_text else 0
    cents = int(frac_text) if frac_text else 0
    # The digits stay digits here; the integer pass further down spells them out.
    if dollars and cents:
        return f"{dollars} {_unit(dollars, 'dollar')}, {cents} {_unit(cents, 'cent')}"
    if dollars:
        return f"{dollars} {_unit(dollars, 'dollar')}"
    if cents:
        return f"{cents} {_unit(cents, 'cent')}"
    return "zero dollars"


def _spell_integer(match: re.Match) -> str:
    value = int(match.group(0))
    if 1000 < value < 3000:
        # Read like a year: 1999 -> "nineteen ninety-nine", 1900 -> "nineteen hundred".
        if value == 2000:
            return "two thousand"
        if 2000 < value < 2010:
            return "two thousand " + _words(value % 100)
        if value % 100 == 0:
            return _words(value // 100) + " hundred"
        return _words(value, andword="", zero="oh", group=2).replace(", ", " ")
    return _words(value, andword="")


def spell_out_numbers(text: str) -> str:
    """Replace digits by words the way TorToiSe's training text was normalised."""
    text = _GROUPED_DIGITS.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _POUNDS.sub(r"\1 pounds", text)
    text = _DOLLARS.sub(_spell_dollars, text)
    text = _DECIMAL.sub(lambda m: m.group(1).replace(".", " point "), text)
    text = _ORDINAL.sub(lambda m: _words(m.group(0)), text)
    return _INTEGER.sub(_spell_integer, text)


def expand_abbreviations(text: str) -> str:
    for pattern, full in _ABBREVIATIONS:
        text = pattern.sub(full, text)
    return text


def basic_clean(text: str) -> str:
    """Lowercase and collapse whitespace runs to one space."""
    return _WHITESPACE.sub(" ", text.lower())


def english_clean(text: str) -> str:
    """The official english_cleaners: ASCII, lowercase, numbers, abbreviations, spaces, quotes."""
    from unidecode import unidecode

    text = unidecode(text).lower()
    text = spell_out_numbers(text)
    text = expand_abbreviations(text)
    text = _WHITESPACE.sub(" ", text)
    return text.replace('"', "")


CLEANERS: dict[str, Callable[[str], str]] = {"english": english_clean, "basic": basic_clean}


# --------------------------------------------------------------------------------------------
# BPE


@lru_cache(maxsize=4)
def _load_bpe(path: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(path)


class TortoiseTokenizer:
    """Text -> TorToiSe text-token ids (and back, for display)."""

    def __init__(self, vocab_file: str | Path | None = None, cleaner: str = "english"):
        if cleaner not in CLEANERS:
            raise ValueError(f"unknown cleaner {cleaner!r}; expected one of {sorted(CLEANERS)}")
        self.clean = CLEANERS[cleaner]
        self.bpe = _load_bpe(str(vocab_file or TOKENIZER_FILE))

    def encode(self, text: str) -> list[int]:
        """Ids exactly as the official VoiceBpeTokenizer.encode gives them (no trailing pad)."""
        cleaned = self.clean(text)
        # Spaces are not BPE symbols: the model was trained with an explicit [SPACE] token, which
        # the tokenizer splits out before the Whitespace pre-tokenizer sees the rest.
        return self.bpe.encode(cleaned.replace(" ", SPACE_TOKEN)).ids

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Readable text for ids; [STOP] and [UNK] are dropped, [SPACE] becomes a space."""
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().reshape(-1).tolist()
        # tokenizers joins tokens with spaces; those are artefacts, the real spaces are [SPACE].
        text = self.bpe.decode(list(ids), skip_special_tokens=False).replace(" ", "")
        return text.replace(SPACE_TOKEN, " ").replace("[STOP]", "").replace("[UNK]", "")

    def text_tokens_for_tts(self, text: str) -> torch.Tensor:
        """The (1, n+1) int32 row the official tts() feeds the models: ids plus one trailing 0.

        Raises TextTooLongError when the padded row reaches MAX_TEXT_TOKENS (the official code
        asserts it is shorter), so callers can split the text into sentences first.
        """
        ids = self.encode(text)
        if len(ids) + 1 >= MAX_TEXT_TOKENS:
            raise TextTooLongError(
                f"text is too long for one TorToiSe segment: {len(ids)} tokens "
                f"(at most {MAX_TEXT_TOKENS - 2}); split it into shorter sentences")
        return torch.tensor([ids + [STOP_ID]], dtype=torch.int32)
