"""Turn written English into the words a speaker would say.

Numbers (cardinals, ordinals, decimals, years, times, money, percentages), common abbreviations
and symbols are spelled out, and so are dates, phone numbers, fractions, units, web and mail
addresses (`voxmith.text.readings`), so every engine reads them the same way and so that Whisper
transcripts can be compared with the input. Number words come from `num2words`.
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

from voxmith.text.language import reads_as_latin
from voxmith.text.readings import spell_readings

ABBREVIATIONS = {
    "mr": "mister", "mrs": "missus", "ms": "miz", "dr": "doctor", "prof": "professor", "st": "saint",
    "jr": "junior", "sr": "senior", "mt": "mount", "vs": "versus", "etc": "et cetera", "approx": "approximately",
    "no": "number", "dept": "department", "est": "established", "govt": "government", "inc": "incorporated",
    "ltd": "limited", "co": "company", "corp": "corporation", "jan": "january", "feb": "february",
    "aug": "august", "sept": "september", "oct": "october", "nov": "november", "dec": "december",
}
# Expanded only when followed by a period (so "no" and "co" as words are left alone).
_ABBREV_RE = re.compile(r"\b(" + "|".join(ABBREVIATIONS) + r")\.(?=\s|$)", re.IGNORECASE)
_LATIN = [(re.compile(r"\be\.g\.", re.I), "for example"), (re.compile(r"\bi\.e\.", re.I), "that is"),
          (re.compile(r"\ba\.m\.", re.I), "a m"), (re.compile(r"\bp\.m\.", re.I), "p m")]
SYMBOLS = {"&": " and ", "+": " plus ", "=": " equals ", "@": " at ", "%": " percent ", "#": " number ",
           "°": " degrees ", "×": " times ", "/": " slash "}
# Sign -> (one, many, and the hundredth's one and many; None where cents are not used: "¥1.5" is
# read as a decimal, "one point five yen"). ¥ is the yen and the yuan: English text means the yen
# more often. Full-width signs (￥, ￦, as pasted from CJK text) are these after NFKC.
CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
              "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", None, None),
              "₹": ("rupee", "rupees", "paisa", "paise"), "₩": ("won", "won", None, None),
              "₽": ("ruble", "rubles", "kopeck", "kopecks"), "₺": ("lira", "lira", "kurus", "kurus"),
              "₪": ("shekel", "shekels", "agora", "agorot"), "₱": ("peso", "pesos", "centavo", "centavos"),
              "₫": ("dong", "dong", None, None), "₦": ("naira", "naira", "kobo", "kobo"),
              "₴": ("hryvnia", "hryvnias", "kopiyka", "kopiykas"), "฿": ("baht", "baht", "satang", "satang"),
              "₿": ("bitcoin", "bitcoins", None, None)}
_CURRENCY_SIGNS = "[" + re.escape("".join(CURRENCIES)) + "]"
# Full-width Latin letters and digits (ＡＢＣ１２３, as typed in CJK input methods) are the ASCII ones:
# folded first, so the language check sees Latin text. Only these: NFKC on everything happens later,
# after the readings that NFKC would spoil ("3²" -> "32").
_FULLWIDTH = {c: c - 0xFEE0 for start, end in (("０", "９"), ("Ａ", "Ｚ"), ("ａ", "ｚ"))
              for c in range(ord(start), ord(end) + 1)}
# "6.02e23", "1.5E-3", "1e308": a number times a power of ten, never computed (an exponent may have
# any length). Not after a letter, digit, point or "#" ("0x1e5", "v1.2e3", "#1e3" are not numbers).
# An uppercase E only with a decimal mantissa or a signed exponent ("1.5E3", "2E-4"): "Room 3E12" and
# "ID 12E45" are names. An amount in a currency keeps it ("$1e6": "... dollars").
_SCIENTIFIC = re.compile(r"(?<![\w.,/#-])(-)?(" + _CURRENCY_SIGNS + r")?(\d+(?:\.\d+)?)([eE])([+-])?(\d+)\b")


# Longer numbers are identifiers (account, order, card numbers), read digit by digit: nobody says
# "nine hundred and ninety-nine quadrillion ...", and num2words overflows on a few hundred digits.
# Numbers stay strings until their length is known: Python refuses int() on over 4300 digits.
MAX_NUMBER_DIGITS = 15
# Digits grouped by thousands separators ("1,000,000,000,000,000,000") are an amount whatever their
# length, read as one up to the decillions; longer still, they are read digit by digit too.
MAX_GROUPED_DIGITS = 36
_DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_GROUPED = re.compile(r"\d{1,3}(?:,\d{3})+")


def _digit_by_digit(digits: str) -> str:
    return " ".join(_DIGIT_WORDS[int(d)] for d in digits)


def _cardinal(n: int | str, to: str = "cardinal", limit: int = MAX_NUMBER_DIGITS) -> str:
    text = str(n)
    digits = text.lstrip("0") or "0"
    if len(digits) > limit:
        return _digit_by_digit(text)
    return num2words(int(digits), to=to)


def _plural(n: str, one: str, many: str, limit: int = MAX_NUMBER_DIGITS) -> str:
    return f"{_cardinal(n, limit=limit)} {one if n.lstrip('0') == '1' else many}"


def _digit_limit(written: str) -> int:
    """How many digits `written` (the whole part as printed) may have and still be read as a number."""
    return MAX_GROUPED_DIGITS if _GROUPED.fullmatch(written) else MAX_NUMBER_DIGITS


def _money(match: re.Match) -> str:
    symbol, written, frac, scale = match.group(1), match.group(2), match.group(3), match.group(4)
    whole, limit = written.replace(",", ""), _digit_limit(written)
    one, many, sub_one, sub_many = CURRENCIES[symbol]
    if scale:  # "$5 million" -> "five million dollars"
        return f"{_number(written + ('.' + frac if frac else ''))} {scale} {many}"
    if frac and sub_one is None:  # no hundredths in use: a decimal amount
        return f"{_number(written + '.' + frac)} {many}"
    parts = [_plural(whole, one, many, limit)] if whole.strip("0") or not frac else []
    cents = frac[:2].ljust(2, "0") if frac else ""
    if cents.strip("0"):
        parts.append(_plural(cents, sub_one, sub_many))
    return " and ".join(parts) or f"zero {many}"


def _number(text: str) -> str:
    written, _, frac = text.partition(".")
    limit, whole = _digit_limit(written), written.replace(",", "")
    if frac:
        return f"{_cardinal(whole or 0, limit=limit)} point " + _digit_by_digit(frac)
    return _cardinal(whole, limit=limit)


def _scientific(match: re.Match) -> str:
    """'6.02e23' -> 'six point zero two times ten to the twenty-third'."""
    sign, currency, mantissa, e, power_sign, power = match.groups()
    if e == "E" and "." not in mantissa and not power_sign:  # "Room 3E12": a name, read as written
        return match.group(0)
    power = power.lstrip("0") or "0"
    minus = "minus " if power_sign == "-" else ""
    if len(power) > MAX_NUMBER_DIGITS:  # no ordinal to say: the power's digits
        ten = f"ten to the power of {minus}{_digit_by_digit(power)}"
    else:
        ten = f"ten to the {minus}{num2words(int(power), to='ordinal')}"
    amount = f" {CURRENCIES[currency][1]}" if currency else ""
    return f"{'minus ' if sign else ''}{_number(mantissa)} times {ten}{amount}"


def _year_or_number(match: re.Match) -> str:
    value = match.group(0)
    # Four-digit numbers from 1100 to 2099 without separators read as years ("nineteen ninety").
    if len(value) == 4 and 1100 <= int(value) <= 2099 and not (2000 <= int(value) <= 2009):
        return num2words(int(value), to="year")
    return _cardinal(value)


def _decade(match: re.Match) -> str:
    """'1920s' -> 'nineteen twenties', '90s' -> 'nineties', '1900s' -> 'nineteen hundreds'."""
    value = match.group(1)
    if len(value) == 2 and value.endswith("0") or len(value) == 4 and 1100 <= int(value) <= 2099:
        words = num2words(int(value), to="year") if len(value) == 4 else num2words(int(value))
        return words[:-1] + "ies" if words.endswith("y") else words + "s"
    return match.group(0)


def _time(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f"{num2words(hours)} o'clock" if not match.group(3) else num2words(hours)
    if minutes < 10:
        return f"{num2words(hours)} oh {num2words(minutes)}"
    return f"{num2words(hours)} {num2words(minutes)}"


def normalize_text(text: str) -> str:
    """Spell out numbers, abbreviations and symbols; collapse whitespace. Keeps punctuation that
    shapes prosody (. , ; : ! ? and quotes). This reader is English: text mostly in another script
    (Japanese, ...) is returned as it is, for the engine's own front end ("1234円" must not become
    "twelve thirty-four円")."""
    folded = text.translate(_FULLWIDTH)
    if not reads_as_latin(folded):
        return text
    text = folded
    # Before NFKC, which would make "3²" "32" and "3½" "31⁄2".
    text = re.sub(r"(?<=\w)²", " squared", text)
    text = re.sub(r"(?<=\w)³", " cubed", text)
    text = re.sub(r"(\d)([\u00bc-\u00be\u2150-\u215e])", r"\1 \2", text)
    text = unicodedata.normalize("NFKC", text).replace("\u2044", "/")  # ½ -> 1⁄2 -> 1/2, read as a fraction
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = re.sub(r"[\u2013\u2014]", ", ", text)  # dashes are pauses
    text = spell_readings(text)  # its units take a number in scientific notation ("1.5e-3 kg")
    text = _SCIENTIFIC.sub(_scientific, text)
    for pattern, words in _LATIN:
        text = pattern.sub(words, text)
    text = _ABBREV_RE.sub(lambda m: ABBREVIATIONS[m.group(1).lower()], text)
    # A minus sign, not a hyphen ("COVID-19", "5-10"): first, before money and decimals become words.
    text = re.sub(r"(?<![\w.,/-])-(?=" + _CURRENCY_SIGNS + r"?\d)", "minus ", text)
    text = re.sub(r"(" + _CURRENCY_SIGNS + r")\s?(\d(?:[\d,]*\d)?)(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion|lakh|crore)\b)?",
                  _money, text)
    text = re.sub(r"\b(\d{1,2}):(\d{2})(?:\s?(am|pm|a m|p m))?\b",
                  lambda m: _time(m) + (f" {m.group(3)}" if m.group(3) else ""), text, flags=re.I)
    text = re.sub(r"\b(\d+)(st|nd|rd|th)\b", lambda m: _cardinal(m.group(1), to="ordinal"), text, flags=re.I)
    text = re.sub(r"(\d[\d,]*\.\d+|\d{1,3}(?:,\d{3})+)", lambda m: _number(m.group(0)), text)
    text = re.sub(r"(?<![\w.,])'?(\d{2}|\d{4})'?s\b", _decade, text)  # "the 1920s", "the '90s"
    # Digits glued to letters are said apart: "H2O", "MP3", "3pm" (units and ordinals are done above).
    text = re.sub(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])(?!s\b)", " ", text)  # not "45s": "forty-fives"
    text = re.sub(r"\d+", _year_or_number, text)
    for symbol, words in SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    return re.sub(r"\s+", " ", text).strip()
