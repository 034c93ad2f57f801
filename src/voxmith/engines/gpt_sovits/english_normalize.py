"""English text normalisation exactly as GPT-SoVITS does it before its English G2P.

The GPT model was trained on phones made by the official front end (`text/english.py:
text_normalize` and `text/en_normalization/expend.py`), so voxmith reproduces its rules, quirks
included, rather than using voxmith's own reader (`voxmith.text.normalize`): a different reading
would give phone sequences the model never saw. Golden tests compare this module's output with the
official code's (tests/fixtures/gpt_sovits/english_golden.json).

What it does, in order: full-width Chinese stops to ASCII; "1. " list markers to ordinals; "a + b"
arithmetic in words; negative integers; thousands commas; 24-hour times; a few units (km, h, °C...);
pounds and dollars; decimals digit by digit; fractions; ordinals (21st); other integers (years such
as 1999 read in pairs); accents stripped; '%' as "percent"; every character but letters, spaces and
' . , ? ! - dropped; "i.e." / "e.g." spelled; a space before each capital inside a word (so ChatGPT
is read "Chat G P T"); runs of punctuation collapsed to their first mark.

Known quirks kept on purpose (they are what the model heard): "20km/h" reads "twenty kilometersh";
"and -19" loses the space ("andnegative nineteen"); ';' and ':' are dropped rather than turned into
commas (the official replacement table escapes its character classes, so they never match).
"""

from __future__ import annotations

import re
import unicodedata

import inflect

_inflect = inflect.engine()

# Full-width stops from Chinese text (the only entries of the official table that take effect).
_FULL_WIDTH = {"\u3002": ".", "\uff01": "!", "\uff1f": "?"}
_FULL_WIDTH_RE = re.compile("|".join(map(re.escape, _FULL_WIDTH)))

_LIST_MARKER_RE = re.compile(r"\b([0-9]+)\. ")
_SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u02e3\u02b8\u207f"
_OPERAND = (rf"(?:-?\d+(?:\.\d+)?[{_SUPERSCRIPTS}]*|\.\d+[{_SUPERSCRIPTS}]*"
            rf"|[A-Za-z][{_SUPERSCRIPTS}]*)")
_ARITHMETIC_RE = re.compile(rf"({_OPERAND})\s+([+\-\u00d7\u00f7=])\s+({_OPERAND})")
_OPERATOR_WORDS = {"+": " plus ", "-": " minus ", "\u00d7": " times ", "\u00f7": " divided by ",
                   "=": " Equals "}
# The whitespace before the minus sign is part of the match and is not put back.
_NEGATIVE_RE = re.compile(r"(?:^|\s+)(-)(\d+)")
_THOUSANDS_RE = re.compile(r"([0-9][0-9\,]+[0-9])")
_TIME_RE = re.compile(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b")
# Alternation order matters: "km" wins over "km/h", as in the official pattern.
_UNIT_WORDS = {
    "m": ("meter", "meters"), "km": ("kilometer", "kilometers"),
    "km/h": ("kilometer per hour", "kilometers per hour"), "ft": ("feet", "feet"),
    "L": ("liter", "liters"), "tbsp": ("tablespoon", "tablespoons"), "tsp": ("teaspoon", "teaspoons"),
    "h": ("hour", "hours"), "min": ("minute", "minutes"), "s": ("second", "seconds"),
    "\u00b0C": ("degree celsius", "degrees celsius"), "\u00b0F": ("degree fahrenheit", "degrees fahrenheit"),
}
_MEASUREMENT_RE = re.compile(r"\b([0-9]+(\.[0-9]+)?(" + "|".join(map(re.escape, _UNIT_WORDS)) + r"))\b")
_POUNDS_BEFORE_RE = re.compile(r"\u00a3([0-9\.\,]*[0-9]+)")
_POUNDS_AFTER_RE = re.compile(r"([0-9\.\,]*[0-9]+)\u00a3")
_DOLLARS_BEFORE_RE = re.compile(r"\$([0-9\.\,]*[0-9]+)")
_DOLLARS_AFTER_RE = re.compile(r"([(0-9\.\,]*[0-9]+)\$")  # '(' in the class, as in the official
_DECIMAL_RE = re.compile(r"([0-9]+\.\s*[0-9]+)")
_FRACTION_RE = re.compile(r"([0-9]+/[0-9]+)")
_ORDINAL_RE = re.compile(r"[0-9]+(st|nd|rd|th)")
_INTEGER_RE = re.compile(r"[0-9]+")
_NOT_KEPT_RE = re.compile(r"[^ A-Za-z'.,?!\-]")
_INNER_CAPITAL_RE = re.compile(r"(?<!^)(?<![\s])([A-Z])")
_PUNCTUATION = "!?\u2026,.-"
_REPEATED_PUNCTUATION_RE = re.compile(
    "([" + re.escape(_PUNCTUATION) + r"\s])([" + re.escape(_PUNCTUATION) + "])+")


def normalize_english(text: str) -> str:
    """The text the official English G2P reads (see the module docstring)."""
    text = _FULL_WIDTH_RE.sub(lambda m: _FULL_WIDTH[m.group()], text)
    text = _expand(text)
    return _REPEATED_PUNCTUATION_RE.sub(r"\1", text)


def _expand(text: str) -> str:
    text = _LIST_MARKER_RE.sub(lambda m: _inflect.ordinal(m.group(1)) + ", ", text)
    while _ARITHMETIC_RE.search(text):
        text = _ARITHMETIC_RE.sub(lambda m: m.group(1) + _OPERATOR_WORDS[m.group(2)] + m.group(3), text)
    text = _NEGATIVE_RE.sub(lambda m: "negative " + m.group(2), text)
    text = _THOUSANDS_RE.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _TIME_RE.sub(_time_words, text)
    text = _MEASUREMENT_RE.sub(_measurement_words, text)
    text = _POUNDS_BEFORE_RE.sub(lambda m: _money_words(m.group(1), _POUNDS), text)
    text = _POUNDS_AFTER_RE.sub(lambda m: _money_words(m.group(1), _POUNDS), text)
    text = _DOLLARS_BEFORE_RE.sub(lambda m: _money_words(m.group(1), _DOLLARS), text)
    text = _DOLLARS_AFTER_RE.sub(lambda m: _money_words(m.group(1), _DOLLARS), text)
    text = _DECIMAL_RE.sub(_decimal_words, text)
    text = _FRACTION_RE.sub(_fraction_words, text)
    text = _ORDINAL_RE.sub(lambda m: _inflect.number_to_words(m.group(0)), text)
    text = _INTEGER_RE.sub(lambda m: integer_words(int(m.group(0))), text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = text.replace("%", " percent")
    text = _NOT_KEPT_RE.sub("", text)
    text = re.sub(r"(?i)i\.e\.", "that is", text)
    text = re.sub(r"(?i)e\.g\.", "for example", text)
    return _INNER_CAPITAL_RE.sub(r" \1", text)


def integer_words(number: int) -> str:
    """1001-2999 read as years ("nineteen ninety-nine", "two thousand five", "nineteen hundred"),
    everything else as a cardinal without "and"."""
    if 1000 < number < 3000:
        if number == 2000:
            return "two thousand"
        if 2000 < number < 2010:
            return "two thousand " + _inflect.number_to_words(number % 100)
        if number % 100 == 0:
            return _inflect.number_to_words(number // 100) + " hundred"
        return _inflect.number_to_words(number, andword="", zero="oh", group=2).replace(", ", " ")
    return _inflect.number_to_words(number, andword="")


def _time_words(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    period = "a.m." if hours < 12 else "p.m."
    if hours > 12:
        hours -= 12
    hour_words = _inflect.number_to_words(hours)
    if minutes == 0:
        return f"{hour_words} o'clock {period}"
    return f"{hour_words} {_inflect.number_to_words(minutes)} {period}"


def _measurement_words(match: re.Match) -> str:
    written, decimals, unit = match.group(1), match.group(2), match.group(3)
    # "1.0" counts as plural like the official rule: only a bare 1 is singular.
    singular = decimals is None and int(written.replace(unit, "").replace(".", "")) == 1
    return written.replace(unit, " " + _UNIT_WORDS[unit][0 if singular else 1])


_POUNDS = ("pound", "pounds", "penny", "pence")
_DOLLARS = ("dollar", "dollars", "cent", "cents")


def _money_words(amount: str, units) -> str:
    one, many, one_small, many_small = units
    parts = amount.split(".")
    if len(parts) > 2:
        return f"{amount} {many}"
    try:
        whole = int(parts[0]) if parts[0] else 0
        small = int(parts[1].ljust(2, "0")) if len(parts) > 1 and parts[1] else 0
    except ValueError:  # "(5$" or ",5": the official code fails here; read the digits plainly
        return amount
    whole_unit = one if whole == 1 else many
    small_unit = one_small if small == 1 else many_small
    if whole and small:
        return f"{whole} {whole_unit} and {small} {small_unit}"
    if whole:
        return f"{whole} {whole_unit}"
    if small:
        return f"{small} {small_unit}"
    return f"zero {many}"


def _decimal_words(match: re.Match) -> str:
    whole, decimals = match.group(1).split(".")
    return whole + " point " + " ".join(decimals)


def _fraction_words(match: re.Match) -> str:
    numerator, denominator = (int(part) for part in match.group(0).split("/"))
    numerator_words = _inflect.number_to_words(numerator)
    if denominator == 1:
        return numerator_words
    if denominator == 2:
        return f"{numerator_words} {'half' if numerator == 1 else 'halves'}"
    denominator_words = _inflect.ordinal(_inflect.number_to_words(denominator))
    return f"{numerator_words} {denominator_words}{'s' if numerator > 1 else ''}"
