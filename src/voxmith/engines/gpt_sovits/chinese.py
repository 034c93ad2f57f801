"""Chinese (Mandarin) phones for GPT-SoVITS, as the official v2 front end makes them
(`text/chinese2.py`).

Needs jieba (word segmentation with part-of-speech tags) and pypinyin (readings):
`pip install 'voxmith[zh]'`. Without them Chinese is refused (frontend.py).

`chinese_phones(text)` -> (phones, word2ph, normalised text):
1. the text is normalised (chinese_normalize.py: numbers read out, only Chinese characters and
   `!?…,.-` kept);
2. cut after each punctuation mark; per piece, jieba's words, regrouped for tone sandhi;
3. per word, its pinyin: the G2PW model's reading of the whole piece when the model is there
   (g2pw.py: polyphones chosen from context, then the official word list of corrections), else
   pypinyin's reading of the word (what the official code does with G2PW switched off); then tone
   sandhi and erhua (儿 takes the tone of the syllable before it);
4. each syllable becomes an initial and a final with its tone (the official opencpop table:
   `zh` + `ang1`, `y` + `i3`...), each punctuation mark one phone; `word2ph` says how many
   phones each character of the normalised text has (2, or 1 for a mark), which the BERT
   features need.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import threading
import warnings
from functools import lru_cache
from typing import List, Optional, Tuple

from voxmith.engines.gpt_sovits.chinese_normalize import KEPT_PUNCTUATION, chinese_data, normalize_chinese
from voxmith.engines.gpt_sovits.g2pw import G2PW, corrected
from voxmith.engines.gpt_sovits.tone_sandhi import ToneSandhi
from voxmith.errors import EngineError

SEGMENTERS = ("jieba_fast", "jieba")  # the official code uses jieba_fast; jieba has the same dictionary
# Toneless finals written differently after an initial, and syllables without an initial.
_AFTER_INITIAL = {"uei": "ui", "iou": "iu", "uen": "un"}
_WITHOUT_INITIAL = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}
_FIRST_LETTER = {"v": "yu", "e": "e", "i": "y", "u": "w"}
_PIECE_END_RE = re.compile(r"(?<=[" + re.escape(KEPT_PUNCTUATION) + r"])\s*")
_LATIN_RE = re.compile("[a-zA-Z]+")
_lock = threading.Lock()  # jieba builds its dictionary lazily; one thread at a time


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@lru_cache(maxsize=1)
def segmenter_name() -> Optional[str]:
    return next((name for name in SEGMENTERS if _installed(name)), None)


def chinese_available() -> bool:
    return segmenter_name() is not None and _installed("pypinyin")


def unavailable_reason() -> Optional[str]:
    if chinese_available():
        return None
    return "the Chinese front end needs jieba and pypinyin: pip install 'voxmith[zh]'"


@lru_cache(maxsize=1)
def _libraries():
    """(jieba module, jieba.posseg, pypinyin) imported once, jieba's log quietened."""
    with warnings.catch_warnings():  # jieba imports the deprecated pkg_resources
        warnings.simplefilter("ignore")
        jieba = importlib.import_module(segmenter_name())
        posseg = importlib.import_module(segmenter_name() + ".posseg")
    jieba.setLogLevel(logging.CRITICAL)
    pypinyin = importlib.import_module("pypinyin")
    return jieba, posseg, pypinyin


def pinyin_finals(word: str) -> List[str]:
    """pypinyin's finals of `word` with the tone digit last (5 = neutral), one per syllable."""
    _, _, pypinyin = _libraries()
    return pypinyin.lazy_pinyin(word, neutral_tone_with_five=True, style=pypinyin.Style.FINALS_TONE3)


def pinyin_initials(word: str) -> List[str]:
    _, _, pypinyin = _libraries()
    return pypinyin.lazy_pinyin(word, neutral_tone_with_five=True, style=pypinyin.Style.INITIALS)


@lru_cache(maxsize=1)
def tone_sandhi() -> ToneSandhi:
    jieba, _, _ = _libraries()
    return ToneSandhi(lambda word: list(jieba.cut_for_search(word)), pinyin_finals)


def words(piece: str) -> List[Tuple[str, str]]:
    """jieba's (word, part-of-speech tag) pairs of `piece`."""
    _, posseg, _ = _libraries()
    with _lock:
        return [(pair.word, pair.flag) for pair in posseg.lcut(piece)]


def _erhua(initials: List[str], finals: List[str], word: str, tag: str) -> Tuple[List[str], List[str]]:
    """儿 at the end of a word: er1 read er2; in erhua words it takes the tone of the syllable before."""
    last = len(finals) - 1
    if finals and last < len(word) and word[last] == "儿" and finals[last] == "er1":
        finals[last] = "er2"
    data = chinese_data()
    if word not in data["erhua_words"] and (word in data["not_erhua_words"] or tag in {"a", "j", "nr"}):
        return initials, finals
    if len(finals) != len(word):
        return initials, finals
    if len(word) >= 2 and word[-1] == "儿" and finals[-1] in {"er2", "er5"} \
            and word[-2:] not in data["not_erhua_words"]:
        finals = finals[:-1] + ["er" + finals[-2][-1]]
    return initials, finals


def syllable_phones(initial: str, final: str) -> List[str]:
    """The two v2 phones of one syllable (initial + final with tone), or a punctuation mark."""
    if initial == final:
        if initial not in KEPT_PUNCTUATION:
            raise EngineError(f"The Chinese front end has no reading for '{initial}'.")
        return [initial]
    toneless, tone = final[:-1], final[-1]
    if tone not in "12345":
        raise EngineError(f"The Chinese front end read '{initial}{final}', which has no tone.")
    if initial:
        syllable = initial + _AFTER_INITIAL.get(toneless, toneless)
    else:
        syllable = _WITHOUT_INITIAL.get(toneless)
        if syllable is None:
            syllable = _FIRST_LETTER.get(toneless[:1], toneless[:1]) + toneless[1:]
    phones = chinese_data()["pinyin_symbols"].get(syllable)
    if phones is None:
        raise EngineError(f"The Chinese front end has no phones for the syllable '{syllable}{tone}'.")
    return [phones[0], phones[1] + tone]


def _word_readings(word: str, tag: str, sandhi: ToneSandhi, readings: Optional[List[Optional[str]]]
                   ) -> Tuple[List[str], List[str]]:
    """(initials, finals) of one word: from pypinyin, or from G2PW's `readings` of its characters
    (corrected by the official word list; a mark is its own initial and final)."""
    if readings is None:
        initials, finals = pinyin_initials(word), pinyin_finals(word)
    else:
        _, _, pypinyin = _libraries()
        initials, finals = [], []
        for reading in corrected(word, readings):
            if reading and reading[0].isalpha():
                initials.append(pypinyin.contrib.tone_convert.to_initials(reading))
                finals.append(pypinyin.contrib.tone_convert.to_finals_tone3(reading, neutral_tone_with_five=True))
            else:
                initials.append(reading or "")
                finals.append(reading or "")
    finals = sandhi.sandhi(word, tag, finals)
    return _erhua(initials, finals, word, tag)


def _piece_readings(piece: str, readings: Optional[List[Optional[str]]]) -> Tuple[List[str], List[str]]:
    """(initials, finals) of every character of a piece, word by word with sandhi and erhua;
    `readings`: G2PW's pinyin of each character of the piece, or None for pypinyin's."""
    sandhi = tone_sandhi()
    initials: List[str] = []
    finals: List[str] = []
    position = 0
    for word, tag in sandhi.merge_words(words(piece)):
        start, position = position, position + len(word)
        if tag == "eng":
            continue
        word_readings = None if readings is None else readings[start:position]
        word_initials, word_finals = _word_readings(word, tag, sandhi, word_readings)
        initials += word_initials
        finals += word_finals
    return initials, finals


def g2p(normalized: str, g2pw: Optional[G2PW] = None) -> Tuple[List[str], List[int]]:
    """(phones, word2ph) of normalised Chinese text; polyphones by `g2pw` when given."""
    phones: List[str] = []
    word2ph: List[int] = []
    pieces = [_LATIN_RE.sub("", p) for p in _PIECE_END_RE.split(normalized) if p.strip()]
    readings = iter(g2pw.readings([p for p in pieces if p]) if g2pw is not None else [])
    for piece in pieces:
        piece_readings = next(readings) if g2pw is not None and piece else None
        initials, finals = _piece_readings(piece, piece_readings)
        for initial, final in zip(initials, finals):
            syllable = syllable_phones(initial, final)
            phones += syllable
            word2ph.append(len(syllable))
    return phones, word2ph


def chinese_phones(text: str, g2pw: Optional[G2PW] = None) -> Tuple[Tuple[str, ...], Tuple[int, ...], str]:
    """(phones in the v2 symbol table, word2ph, normalised text) of Chinese text; polyphones read by
    `g2pw` when given, else by pypinyin."""
    normalized = normalize_chinese(text)
    phones, word2ph = g2p(normalized, g2pw)
    if len(word2ph) != len(normalized):
        raise EngineError(f"The Chinese front end read {len(word2ph)} of the {len(normalized)} characters of "
                          f"'{normalized}'.")
    return tuple(phones), tuple(word2ph), normalized
