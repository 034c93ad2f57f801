"""The synthesizer's text front end: English text to the character ids the official Tacotron was
trained on (official `synthesizer/utils/{symbols,text,cleaners,numbers}.py`).

`english_cleaners`: transliterate to ASCII (Unidecode), lowercase, spell out numbers (inflect),
expand a fixed list of abbreviations, collapse whitespace. Characters outside the symbol set are
dropped. As officially, text in curly braces (ARPAbet in the original Tacotron) yields no symbols,
because this model has no phoneme symbols; and since Unidecode runs first, "£" has become "PS"
before the pound rule could see it. The sequence ends with the end-of-sequence symbol "~".
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import List

PAD = "_"
EOS = "~"
CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!'\"(),-.:;? "
SYMBOLS = [PAD, EOS] + list(CHARACTERS)  # ids are positions in this list (66 symbols)
_SYMBOL_ID = {s: i for i, s in enumerate(SYMBOLS)}

_CURLY = re.compile(r"(.*?)\{(.+?)\}(.*)")
_WHITESPACE = re.compile(r"\s+")
_ABBREVIATIONS = [(re.compile(r"\b%s\." % short, re.IGNORECASE), long) for short, long in (
    ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"), ("co", "company"),
    ("jr", "junior"), ("maj", "major"), ("gen", "general"), ("drs", "doctors"), ("rev", "reverend"),
    ("lt", "lieutenant"), ("hon", "honorable"), ("sgt", "sergeant"), ("capt", "captain"),
    ("esq", "esquire"), ("ltd", "limited"), ("col", "colonel"), ("ft", "fort"))]

_COMMA_NUMBER = re.compile(r"([0-9][0-9,]+[0-9])")
_DECIMAL_NUMBER = re.compile(r"([0-9]+\.[0-9]+)")
_POUNDS = re.compile(r"£([0-9,]*[0-9]+)")
_DOLLARS = re.compile(r"\$([0-9.,]*[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_NUMBER = re.compile(r"[0-9]+")


@lru_cache(maxsize=1)
def _inflect():
    import inflect

    return inflect.engine()


def _unit(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _dollars(match: re.Match) -> str:
    parts = match.group(1).split(".")
    if len(parts) > 2:
        return match.group(1) + " dollars"  # not an amount we can read
    dollars = int(parts[0]) if parts[0] else 0
    cents = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    if dollars and cents:
        return f"{dollars} {_unit(dollars, 'dollar', 'dollars')}, {cents} {_unit(cents, 'cent', 'cents')}"
    if dollars:
        return f"{dollars} {_unit(dollars, 'dollar', 'dollars')}"
    if cents:
        return f"{cents} {_unit(cents, 'cent', 'cents')}"
    return "zero dollars"


def _number(match: re.Match) -> str:
    """Years 1001-2999 are read in pairs ("nineteen eighty-four"), other numbers in full."""
    num = int(match.group(0))
    words = _inflect().number_to_words
    if 1000 < num < 3000:
        if num == 2000:
            return "two thousand"
        if 2000 < num < 2010:
            return "two thousand " + words(num % 100)
        if num % 100 == 0:
            return words(num // 100) + " hundred"
        return words(num, andword="", zero="oh", group=2).replace(", ", " ")
    return words(num, andword="")


def normalize_numbers(text: str) -> str:
    text = _COMMA_NUMBER.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _POUNDS.sub(r"\1 pounds", text)
    text = _DOLLARS.sub(_dollars, text)
    text = _DECIMAL_NUMBER.sub(lambda m: m.group(1).replace(".", " point "), text)
    text = _ORDINAL.sub(lambda m: _inflect().number_to_words(m.group(0)), text)
    return _NUMBER.sub(_number, text)


def english_cleaners(text: str) -> str:
    from unidecode import unidecode

    text = unidecode(text).lower()
    text = normalize_numbers(text)
    for pattern, expansion in _ABBREVIATIONS:
        text = pattern.sub(expansion, text)
    return _WHITESPACE.sub(" ", text)


def _ids(text: str) -> List[int]:
    return [_SYMBOL_ID[c] for c in text if c in _SYMBOL_ID and c not in (PAD, EOS)]


def text_to_ids(text: str) -> List[int]:
    """Character ids of `text` after `english_cleaners`, ending with the end-of-sequence id."""
    ids: List[int] = []
    while text:
        match = _CURLY.match(text)
        if not match:
            ids += _ids(english_cleaners(text))
            break
        ids += _ids(english_cleaners(match.group(1)))  # the braces' content has no symbols here
        text = match.group(3)
    return ids + [_SYMBOL_ID[EOS]]


def ids_to_text(ids: List[int]) -> str:
    return "".join(SYMBOLS[i] for i in ids if 0 <= i < len(SYMBOLS))
