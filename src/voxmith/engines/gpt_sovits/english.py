"""English phones for GPT-SoVITS: the official English G2P's rules, offline.

`english_phones(text)` gives what the official `text.cleaner.clean_text(text, "en")` gives: the
normalised text (english_normalize.py) and its phones in the v2 symbol table. A word is read by
the first rule that applies (the official order, `text/english.py`):

1. a token without letters (punctuation) is itself;
2. a single letter is spelled from the dictionary ("A" alone, capitalised, is "EY1");
3. a homograph takes the pronunciation its part-of-speech tag selects (pos_tags.py);
4. a word in the dictionary (CMUdict 0.7b + the official "fast" additions + hot fixes
   `data/engdict_hot.txt`, with the official deletions of mispronounced abbreviations);
5. a capitalised word in the names dictionary (about 20,000 given names);
6. an unknown word of at most 3 letters is spelled letter by letter;
7. an unknown possessive ("zorblax's") is the word + S / AH0 Z / Z by its last sound;
8. a compound that `wordsegment` splits ("sunflowerfield") is read part by part (each by 4-8);
9. anything else is predicted by the g2p_en neural model (g2p_neural.py).
Phones outside the symbol table are dropped; an apostrophe becomes "-"; fewer than 4 phones get a
leading "," (the official minimum).

Data: `data/english_dict.json.gz` and `data/english_names.json.gz` (first pronunciation per word,
built from the official repository's files, CMUdict licence in `data/cmudict_header.txt`).
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from voxmith.engines.gpt_sovits.english_normalize import normalize_english
from voxmith.engines.gpt_sovits.g2p_neural import homographs, neural_g2p
from voxmith.engines.gpt_sovits.pos_tags import RuleTagger, Tagger, find_tagger_folder, load_tagger
from voxmith.engines.gpt_sovits.symbols import DATA_DIR, symbol_ids

# Abbreviations the official front end removes from the dictionary because CMUdict reads them as
# words ("AI" as "EY1"?); without an entry they are spelled out (rule 6).
REMOVED_WORDS = ("ae", "ai", "ar", "ios", "hud", "os")
# Homographs whose g2p_en entry the official code corrects.
HOMOGRAPH_FIXES = {
    "read": (["R", "IY1", "D"], ["R", "EH1", "D"], "VBP"),
    "complex": (["K", "AH0", "M", "P", "L", "EH1", "K", "S"], ["K", "AA1", "M", "P", "L", "EH0", "K", "S"], "JJ"),
}
VOICELESS_ENDINGS = frozenset({"P", "T", "K", "F", "TH", "HH"})  # + "'s" -> S
SIBILANT_ENDINGS = frozenset({"S", "Z", "SH", "ZH", "CH", "JH"})  # + "'s" -> AH0 Z
DROPPED = frozenset({" ", "<pad>", "UW", "</s>", "<s>"})  # g2p_en specials (and its stressless UW)
MIN_PHONES = 4
_POSSESSIVE_RE = re.compile(r"^([a-z]+)('s)$")
_HAS_LETTER_RE = re.compile("[a-z]")


def _read_json_gz(path: Path) -> dict:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


@lru_cache(maxsize=1)
def pronouncing_dictionary() -> Dict[str, List[str]]:
    words = _read_json_gz(DATA_DIR / "english_dict.json.gz")
    for line in (DATA_DIR / "engdict_hot.txt").read_text(encoding="utf-8").splitlines():
        parts = line.strip().split(" ")
        if parts and parts[0]:
            words[parts[0].lower()] = parts[1:]
    for word in REMOVED_WORDS:
        words.pop(word, None)
    return words


@lru_cache(maxsize=1)
def names_dictionary() -> Dict[str, List[str]]:
    return _read_json_gz(DATA_DIR / "english_names.json.gz")


@lru_cache(maxsize=1)
def homograph_table() -> Dict[str, Tuple[List[str], List[str], str]]:
    return {**homographs(), **HOMOGRAPH_FIXES}


_wordsegment_lock = threading.Lock()
_wordsegment_loaded = False


def split_compound(word: str) -> List[str]:
    """`wordsegment`'s split of a lower-case word (its unigram/bigram tables load on first use)."""
    global _wordsegment_loaded
    import wordsegment

    with _wordsegment_lock:
        if not _wordsegment_loaded:
            wordsegment.load()
            _wordsegment_loaded = True
    return wordsegment.segment(word)


@lru_cache(maxsize=1)
def _tokenizer():
    from nltk.tokenize import TweetTokenizer

    return TweetTokenizer()


@dataclass(frozen=True)
class EnglishPhones:
    phones: Tuple[str, ...]  # symbols of the v2 table
    normalized: str


class EnglishG2P:
    """The official English G2P (see the module docstring); `tagger` decides homographs."""

    def __init__(self, tagger: Optional[Tagger] = None, tagger_dirs: Sequence[Path] = ()):
        self.tagger = tagger or load_tagger(tagger_dirs)
        self.words = pronouncing_dictionary()
        self.names = names_dictionary()
        self.homographs = homograph_table()

    def __call__(self, text: str) -> EnglishPhones:
        normalized = normalize_english(text)
        phones = self.g2p(normalized)
        if len(phones) < MIN_PHONES:
            phones = [","] + phones
        return EnglishPhones(tuple(phones), normalized)

    def g2p(self, normalized: str) -> List[str]:
        """Phones of already normalised text, filtered to the symbol table."""
        tokens = _tokenizer().tokenize(normalized)
        phones: List[str] = []
        for token, tag in self.tagger.tag(tokens):
            phones.extend(self.token_phones(token, tag))
        return _to_symbols(phones)

    def token_phones(self, token: str, tag: str) -> List[str]:
        word = token.lower()
        if _HAS_LETTER_RE.search(word) is None:
            return [word]
        if len(word) == 1:
            return ["EY1"] if token == "A" else self.words[word]
        if word in self.homographs:
            return _homograph(self.homographs[word], tag)
        return self.word_phones(token)

    def word_phones(self, token: str) -> List[str]:
        word = token.lower()
        if len(word) > 1 and word in self.words:
            return self.words[word]
        if token.istitle() and word in self.names:
            return self.names[word]
        if len(word) <= 3:
            return self._spelled(word)
        if _POSSESSIVE_RE.match(word):
            return _with_possessive(self.word_phones(word[:-2]))
        parts = split_compound(word)
        if len(parts) == 1:
            return neural_g2p().predict(word)
        return [phone for part in parts for phone in self.word_phones(part)]

    def _spelled(self, word: str) -> List[str]:
        phones: List[str] = []
        for letter in word:
            if letter == "a":
                phones.append("EY1")
            elif not letter.isalpha():
                phones.append(letter)
            else:
                phones.extend(self.words[letter])
        return phones


def _homograph(entry: Tuple[List[str], List[str], str], tag: str) -> List[str]:
    first, second, wanted = entry
    # "read"'s VBP also accepts a shorter prefix of itself ("VB"), as the official test does.
    if tag.startswith(wanted) or (len(tag) < len(wanted) and wanted.startswith(tag)):
        return first
    return second


def _with_possessive(phones: List[str]) -> List[str]:
    last = phones[-1] if phones else ""
    if last in VOICELESS_ENDINGS:
        return phones + ["S"]
    if last in SIBILANT_ENDINGS:
        return phones + ["AH0", "Z"]
    return phones + ["Z"]


def _to_symbols(phones: Sequence[str]) -> List[str]:
    known = symbol_ids()
    result = []
    for phone in phones:
        phone = "UNK" if phone == "<unk>" else phone
        if phone in DROPPED:
            continue
        if phone in known:
            result.append(phone)
        elif phone == "'":
            result.append("-")
    return result


_default_lock = threading.Lock()
_default: Optional[EnglishG2P] = None


def default_g2p(tagger_dirs: Sequence[Path] = ()) -> EnglishG2P:
    """A shared G2P (the dictionaries take about a second to load). One still reading homographs
    by the rule takes NLTK's tagger as soon as it appears in `tagger_dirs` (downloaded meanwhile)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = EnglishG2P(tagger_dirs=tagger_dirs)
        elif tagger_dirs and isinstance(_default.tagger, RuleTagger) and find_tagger_folder(tagger_dirs):
            _default.tagger = load_tagger(tagger_dirs)
        return _default


def english_phones(text: str) -> EnglishPhones:
    return default_g2p()(text)
