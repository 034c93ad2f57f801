"""Which languages a text is written in, cheaply: by the Unicode script of its letters, and for
Latin text a German hint (ä ö ü ß and German function words).

This is a guard, not a language identifier: it tells English from German, and either from text in
another script (Cyrillic, Chinese, Japanese, Korean, Arabic, ...), so the studio can refuse text an
engine cannot say, or say precisely which words it will not say well. Other Latin-script languages
(French, Spanish, ...) are not told apart from English.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

# Unicode script (the first word of a letter's name) -> the language we assume for it.
SCRIPT_LANGUAGES = {
    "CYRILLIC": "ru", "GREEK": "el", "CJK": "zh", "HIRAGANA": "ja", "KATAKANA": "ja", "HANGUL": "ko",
    "ARABIC": "ar", "HEBREW": "he", "DEVANAGARI": "hi", "THAI": "th", "BENGALI": "bn", "TAMIL": "ta",
    "ARMENIAN": "hy", "GEORGIAN": "ka", "ETHIOPIC": "am",
}
LANGUAGE_NAMES = {
    "en": "English", "de": "German", "ru": "Russian (Cyrillic script)", "el": "Greek", "zh": "Chinese",
    "ja": "Japanese", "ko": "Korean", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi (Devanagari script)",
    "th": "Thai", "bn": "Bengali", "ta": "Tamil", "hy": "Armenian", "ka": "Georgian", "am": "Amharic",
}
# German words that are not also English words ("die", "war", "hat", "bin" are left out).
GERMAN_WORDS = frozenset("""und der das ist nicht ich mit sie ein eine einen einem zu auf für von dem sich auch
wir werden wird sind noch nur oder aber wenn dass weil nach heute sehr schon kann können haben mein meine
dein deine ihr euch uns jetzt immer dich mich mir dir ganz gibt wieder zum zur über unter doch""".split())
GERMAN_LETTERS = frozenset("äöüß")
# Languages detected in Latin script: an engine that reads one can at least pronounce the others.
LATIN_SCRIPT_LANGUAGES = frozenset({"en", "de"})
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")


def script_of(char: str) -> str:
    """'LATIN', 'CYRILLIC', 'CJK', ... for a letter; '' for anything else."""
    if not char.isalpha():
        return ""
    name = unicodedata.name(char, "")
    # "FULLWIDTH LATIN CAPITAL LETTER A", "HALFWIDTH KATAKANA LETTER A": forms of their script's letters
    name = name.removeprefix("FULLWIDTH ").removeprefix("HALFWIDTH ")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


@dataclass(frozen=True)
class TextLanguages:
    """`main`: the language of most letters (ISO 639-1 code, 'und' when the text has no letters);
    `words`: each language found -> its words in order of appearance (for scripts without spaces,
    each run of letters counts as one word); `letters`: letters per language; `german_hints`: what
    made Latin text count as German."""

    main: str
    words: Dict[str, List[str]] = field(default_factory=dict)
    letters: Dict[str, int] = field(default_factory=dict)
    german_hints: Tuple[str, ...] = ()

    @property
    def languages(self) -> Tuple[str, ...]:
        return tuple(sorted(self.letters, key=lambda lang: -self.letters[lang]))


def _word_script(word: str) -> str:
    scripts = Counter(script_of(c) for c in word)
    scripts.pop("", None)
    # Japanese runs kanji and kana together without spaces ("日本語です"): any kana makes the run
    # Japanese, however many kanji it has (Chinese has no kana).
    kana = [s for s in ("HIRAGANA", "KATAKANA") if s in scripts]
    if kana:
        return kana[0]
    return scripts.most_common(1)[0][0] if scripts else ""


def _german_hints(latin_words: List[str]) -> Tuple[str, ...]:
    lowered = [w.lower() for w in latin_words]
    function_words = [w for w in lowered if w in GERMAN_WORDS]
    letters = sorted({c for w in lowered for c in w if c in GERMAN_LETTERS})
    # Umlauts alone may be a name (Müller); function words alone may be a quoted phrase.
    if (letters and function_words) or len(function_words) >= max(2, 0.2 * len(lowered)) \
            or (letters and len(set(function_words) | {w for w in lowered if set(w) & GERMAN_LETTERS}) >= 2):
        return tuple(letters) + tuple(dict.fromkeys(function_words))[:5]
    return ()


def detect_languages(text: str) -> TextLanguages:
    """Guess the languages of `text` from its letters (cheap: no model, no dictionary)."""
    words: Dict[str, List[str]] = {}
    latin: List[str] = []
    for word in _WORD.findall(text):
        script = _word_script(word)
        if script == "LATIN":
            latin.append(word)
        elif script:
            words.setdefault(SCRIPT_LANGUAGES.get(script, script.lower()), []).append(word)
    if "ja" in words and "zh" in words:  # Japanese writes kanji between its kana
        words["ja"] = [w for w in _WORD.findall(text) if _word_script(w) in ("HIRAGANA", "KATAKANA", "CJK")]
        del words["zh"]
    hints = _german_hints(latin) if latin else ()
    if latin:
        words = {("de" if hints else "en"): latin, **words}
    letters = {lang: sum(sum(c.isalpha() for c in w) for w in ws) for lang, ws in words.items()}
    main = max(letters, key=letters.get) if letters else "und"
    return TextLanguages(main, words, letters, hints)


def reads_as_latin(text: str) -> bool:
    """Most of the text's letters are Latin (or it has none): English rules may read it."""
    main = detect_languages(text).main
    return main in LATIN_SCRIPT_LANGUAGES or main == "und"


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)
