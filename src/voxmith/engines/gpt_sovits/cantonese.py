"""Cantonese phones for GPT-SoVITS, as the official v2 front end makes them (`text/cantonese.py`).

Needs ToJyutping (Jyutping readings of Cantonese characters; a small pure-Python package):
`pip install 'voxmith[yue]'`. Without it Cantonese is refused (frontend.py).

`cantonese_phones(text)` -> (phones, word2ph, normalised text):
1. numbers and symbols read out as for Mandarin (chinese_normalize.py), then quotes and brackets
   become `'`, `：；，。！？、` the kept marks, and all that is neither a Chinese character nor `!?…,.-`
   is dropped (repeated marks are kept, as officially);
2. each character's Jyutping from ToJyutping ("keoi5"); a run of marks gives one phone per mark;
3. a syllable is cut after the first entry of the official initials list it starts with (that list
   holds some finals too, in an order that decides the cut; "nga" is cut after "ng"), the rest is
   the final (or the initial's last letter when nothing is left); phones are "Y" + initial and
   "Y" + final + tone (1-6), so they never collide with Mandarin phones; marks stay as they are.
   Phones outside the symbol table become UNK. word2ph: 2 per syllable, 1 per mark.
No BERT features (the official code gives Cantonese zeros).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from functools import lru_cache
from typing import List, Optional, Tuple

from voxmith.engines.gpt_sovits.chinese_normalize import KEPT_PUNCTUATION, chinese_data, spoken_sentences
from voxmith.engines.gpt_sovits.symbols import symbol_ids
from voxmith.errors import EngineError

_MARKS_RE = re.compile(f"^[{re.escape(KEPT_PUNCTUATION)}]+$")
_JYUTPING_RE = re.compile(r"^([a-z]+[1-6]+[ ]?)+$")
_NOT_KEPT_RE = re.compile(r"[^\u4e00-\u9fa5" + KEPT_PUNCTUATION + r"]+")


def cantonese_available() -> bool:
    return importlib.util.find_spec("ToJyutping") is not None


def unavailable_reason() -> Optional[str]:
    if cantonese_available():
        return None
    return "the Cantonese front end needs ToJyutping: pip install 'voxmith[yue]'"


@lru_cache(maxsize=1)
def _to_jyutping():
    return importlib.import_module("ToJyutping")


@lru_cache(maxsize=1)
def _punctuation_re() -> Tuple[re.Pattern, dict]:
    table = chinese_data()["cantonese_punctuation"]
    return re.compile("|".join(re.escape(mark) for mark in table)), table


def normalize_cantonese(text: str) -> str:
    pattern, table = _punctuation_re()
    kept = []
    for sentence in spoken_sentences(text):
        sentence = pattern.sub(lambda m: table[m.group()], sentence)
        kept.append(_NOT_KEPT_RE.sub("", sentence))
    return "".join(kept)


def jyutping(normalized: str) -> List[str]:
    """One Jyutping syllable per character, one mark per punctuation mark."""
    syllables: List[str] = []
    for word, reading in _to_jyutping().get_jyutping_list(normalized):
        if _MARKS_RE.match(word):
            syllables += list(word)
        elif reading is None or not _JYUTPING_RE.search(reading):
            raise EngineError(f"The Cantonese front end has no Jyutping for '{word}'.")
        else:
            syllables.append(reading)
    return syllables


def syllable_phones(syllable: str) -> List[str]:
    """The phones of one Jyutping syllable or mark (see the module docstring)."""
    if syllable in KEPT_PUNCTUATION or syllable == "_":
        return [syllable] if syllable in KEPT_PUNCTUATION else ["Y_"]
    tone = syllable[-1] if syllable[-1].isdigit() else ""
    toneless = syllable[:-1] if tone else syllable
    for initial in chinese_data()["cantonese_initials"]:
        if toneless.startswith(initial):
            if toneless.startswith("nga"):
                initial, final = toneless[:2], toneless[2:] or toneless[-1]
            else:
                final = toneless[len(initial):] or initial[-1]
            return ["Y" + initial, "Y" + final + (tone if tone != "0" else "")]
    raise EngineError(f"The Cantonese front end cannot cut the syllable '{syllable}'.")


def cantonese_phones(text: str) -> Tuple[Tuple[str, ...], Tuple[int, ...], str]:
    """(phones in the v2 symbol table, word2ph, normalised text) of Cantonese text."""
    normalized = normalize_cantonese(text)
    known = symbol_ids()
    phones: List[str] = []
    word2ph: List[int] = []
    for syllable in jyutping(normalized):
        read = syllable_phones(syllable)
        phones += [p if p in known else "UNK" for p in read]
        word2ph.append(len(read))
    if len(word2ph) != len(normalized):
        raise EngineError(f"The Cantonese front end read {len(word2ph)} of the {len(normalized)} characters of "
                          f"'{normalized}'.")
    return tuple(phones), tuple(word2ph), normalized
