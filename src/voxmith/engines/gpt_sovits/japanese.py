"""Japanese phones for GPT-SoVITS, as the official `text/japanese.py` makes them (with prosody).

Needs OpenJTalk: the `pyopenjtalk` module with a dictionary. `pyopenjtalk-plus` on PyPI ships one
inside its wheel (`pip install 'voxmith[ja]'`), so nothing is downloaded at run time; plain
`pyopenjtalk` downloads its dictionary on first use, which voxmith does not allow, so it counts only
when its dictionary is already there. Without either, Japanese is refused (frontend.py).

What the official code does, and this module reproduces:
- normalisation: only runs of punctuation collapsed to their first mark;
- "％" read as パーセント, Latin letters lower-cased; the text is cut at every character that is not
  Japanese script, a Latin letter or a digit; each piece that starts with such a character goes
  through OpenJTalk's full-context labels, turned into phones with prosody marks (the ESPnet
  `pyopenjtalk_g2p_prosody` scheme: `#` accent-phrase border, `[` pitch rise, `]` pitch fall, `_`
  pause; unvoiced vowels as plain vowels); the marks between pieces are kept (spaces dropped);
- full-width punctuation mapped to ASCII (、 -> ",", 。 -> "."...). Phones outside the symbol table
  become UNK. No minimum length, no word2ph (as officially).
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path
from functools import lru_cache
from typing import List, Optional, Tuple

from voxmith.engines.gpt_sovits.symbols import PUNCTUATION, symbol_ids

_JAPANESE = r"A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
_JAPANESE_CHAR_RE = re.compile(f"[{_JAPANESE}]")
_MARK_RE = re.compile(f"[^{_JAPANESE}]")
_REPEATED_RE = re.compile("([" + re.escape("".join(PUNCTUATION)) + "])([" + re.escape("".join(PUNCTUATION)) + "])+")
_MARK_PHONES = {"\uff1a": ",", "\uff1b": ",", "\uff0c": ",", "\u3002": ".", "\uff01": "!", "\uff1f": "?",
                "\n": ".", "\u00b7": ",", "\u3001": ",", "...": "\u2026"}
_lock = threading.Lock()  # OpenJTalk's global instance is not thread-safe


@lru_cache(maxsize=1)
def japanese_available() -> bool:
    """pyopenjtalk is installed with a dictionary (checked without importing it: importing is slow,
    and plain pyopenjtalk without its dictionary would download one on first use)."""
    spec = importlib.util.find_spec("pyopenjtalk")
    if spec is None or not spec.submodule_search_locations:
        return False
    package = Path(list(spec.submodule_search_locations)[0])
    return any(package.glob("*/sys.dic"))


@lru_cache(maxsize=1)
def _openjtalk():
    import pyopenjtalk

    return pyopenjtalk


def normalize_japanese(text: str) -> str:
    return _REPEATED_RE.sub(r"\1", text)


def japanese_phones(text: str) -> Tuple[Tuple[str, ...], str]:
    """(phones in the v2 symbol table, normalised text) of Japanese text."""
    normalized = normalize_japanese(text)
    known = symbol_ids()
    phones = [_MARK_PHONES.get(p, p) for p in _g2p(normalized)]
    return tuple(p if p in known else "UNK" for p in phones), normalized


def _g2p(text: str) -> List[str]:
    text = text.replace("\uff05", "\u30d1\u30fc\u30bb\u30f3\u30c8").lower()
    pieces = _MARK_RE.split(text)
    marks = _MARK_RE.findall(text)
    phones: List[str] = []
    for index, piece in enumerate(pieces):
        if _JAPANESE_CHAR_RE.match(piece):
            phones += prosody_phones(piece)[1:-1]
        if index < len(marks) and marks[index] != " ":
            phones.append(marks[index].replace(" ", ""))
    return phones


def _feature(pattern: str, label: str) -> int:
    match = re.search(pattern, label)
    return int(match.group(1)) if match else -50


def prosody_phones(text: str) -> List[str]:
    """OpenJTalk's phones of `text` with prosody marks, between '^' and '$' (or '?' for a question)."""
    openjtalk = _openjtalk()
    with _lock:
        labels = openjtalk.make_label(openjtalk.run_frontend(text))
    phones: List[str] = []
    last = len(labels) - 1
    for index, label in enumerate(labels):
        phone = re.search(r"\-(.*?)\+", label).group(1)
        if phone in "AEIOU":  # unvoiced vowels are read as vowels
            phone = phone.lower()
        if phone == "sil":
            if index == 0:
                phones.append("^")
            elif index == last:
                question = _feature(r"!(\d+)_", label)
                phones += {0: ["$"], 1: ["?"]}.get(question, [])
            continue
        if phone == "pau":
            phones.append("_")
            continue
        phones.append(phone)
        phones += _prosody_mark(phone, label, labels[index + 1])
    return phones


def _prosody_mark(phone: str, label: str, following: str) -> List[str]:
    accent_distance = _feature(r"/A:([0-9\-]+)\+", label)  # mora position relative to the accent
    position = _feature(r"\+(\d+)\+", label)  # mora position in the accent phrase, forward
    backward = _feature(r"\+(\d+)/", label)  # ... and backward
    phrase_morae = _feature(r"/F:(\d+)_", label)
    next_position = _feature(r"\+(\d+)\+", following)
    if backward == 1 and next_position == 1 and phone in "aeiouAEIOUNcl":
        return ["#"]
    if accent_distance == 0 and next_position == position + 1 and position != phrase_morae:
        return ["]"]
    if position == 1 and next_position == 2:
        return ["["]
    return []


_LATIN_RUN_RE = re.compile(r"[A-Za-z][A-Za-z'\- ]*[A-Za-z]|[A-Za-z]")


def split_english(text: str) -> List[Tuple[str, str]]:
    """(language, text) runs: runs of Latin words are English, the rest Japanese. A simple stand-in
    for the official language segmenter (which uses a downloaded language-identification model)."""
    runs: List[Tuple[str, str]] = []
    position = 0
    for match in _LATIN_RUN_RE.finditer(text):
        if match.start() > position:
            runs.append(("ja", text[position:match.start()]))
        runs.append(("en", match.group()))
        position = match.end()
    if position < len(text):
        runs.append(("ja", text[position:]))
    return runs


def unavailable_reason() -> Optional[str]:
    if japanese_available():
        return None
    return ("the Japanese front end needs OpenJTalk with its dictionary: pip install 'voxmith[ja]' "
            "(pyopenjtalk-plus, which ships the dictionary)")
