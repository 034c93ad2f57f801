"""The phone symbols of GPT-SoVITS v2 and later, and their ids.

The table is the official v2 symbol list (Chinese initials/finals, Japanese, ARPAbet, punctuation,
Korean and Cantonese symbols; 732 in all), shipped as data in `data/symbols_v2.json` (built from
the official `text/symbols2.py` by tests/fixtures/gpt_sovits/make_front_end_data.py). A phone's id
is its index: the t2s model's phone embedding is indexed by it, so the order is part of the
checkpoint format and must never change.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

DATA_DIR = Path(__file__).resolve().parent / "data"
# Punctuation the front end keeps as phones (the official `punctuation` list).
PUNCTUATION: Tuple[str, ...] = ("!", "?", "\u2026", ",", ".", "-")
UNKNOWN = "UNK"


@lru_cache(maxsize=None)
def symbols_v2() -> Tuple[str, ...]:
    return tuple(json.loads((DATA_DIR / "symbols_v2.json").read_text(encoding="utf-8")))


@lru_cache(maxsize=None)
def symbol_ids() -> Dict[str, int]:
    return {symbol: index for index, symbol in enumerate(symbols_v2())}


def phone_ids(phones: Iterable[str]) -> List[int]:
    """Ids of `phones`; a phone outside the table is a bug of the caller (the front ends map
    unknown phones to UNK first), so it raises KeyError."""
    ids = symbol_ids()
    return [ids[phone] for phone in phones]
