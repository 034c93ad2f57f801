"""Chinese text normalisation for GPT-SoVITS, as the official v2 front end does it.

The official `text/chinese2.py: text_normalize` runs the PaddleSpeech-derived `zh_normalization`
package, then keeps only Chinese characters and five punctuation marks. This module reproduces its
behaviour (its rules are facts about the official output, so each is kept, quirks included):

1. the text is cut into sentences after `：、，；。？！,;?!` (spaces and brackets/quotes dropped);
2. per sentence: traditional characters -> simplified, full-width letters/digits -> ASCII; then
   numbers are read out in the official order: dates (年月日, 2024-01-02), times and time ranges,
   `a~b` ranges with units, temperatures (always read 度, as officially), unit abbreviations (`kg`, `cm`... even inside words, as
   officially), arithmetic (`1+2=3`), powers, fractions, percentages, mobile/land-line numbers
   (digit by digit, 1 read 幺), number ranges, negative numbers, version numbers, decimals,
   numbers before measure words (2 read 两), other numbers of 3+ digits digit by digit, the rest
   as cardinals; finally circled digits, Greek letters and `+-×÷=/` are read out;
3. punctuation mapped to `!?…,.-`, everything else that is not a Chinese character dropped,
   repeated punctuation collapsed.

cn2an, which the official module imports, is not used by its v2 path, so it is not needed here.
The data tables (measure words, units, traditional characters, Greek letters) are in
data/chinese.json.gz (tests/fixtures/gpt_sovits/make_chinese_data.py).
"""

from __future__ import annotations

import gzip
import json
import re
import string
from functools import lru_cache
from typing import Callable, List, Tuple

from voxmith.engines.gpt_sovits.symbols import DATA_DIR, PUNCTUATION

DIGITS = "零一二三四五六七八九"
# Power of ten -> unit, largest used first when a number is read (10^4 and 10^8 group the rest).
UNITS = ((8, "亿"), (4, "万"), (3, "千"), (2, "百"), (1, "十"))
# The punctuation the Chinese front end keeps (the official `text/symbols.py: punctuation`, "-"
# included, though the Mandarin rules above drop every dash before it could be kept).
KEPT_PUNCTUATION = "".join(PUNCTUATION)
_PUNCTUATION_MAP = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",",
                    "、": ",", "...": "…", "$": ".", "/": ",", "—": "-", "~": "…", "～": "…"}
_PUNCTUATION_RE = re.compile("|".join(re.escape(mark) for mark in _PUNCTUATION_MAP))
_NOT_KEPT_RE = re.compile(r"[^\u4e00-\u9fa5" + KEPT_PUNCTUATION + r"]+")
_REPEATED_RE = re.compile(f"([{re.escape(KEPT_PUNCTUATION)}])([{re.escape(KEPT_PUNCTUATION)}])+")
_SENTENCE_END_RE = re.compile(r"([：、，；。？！,;?!][”’]?)")
_DROPPED_BEFORE = re.compile(r"[—《》【】<>{}()（）#&@“”^_|\\]")
_DROPPED_AFTER = re.compile(r"[-—《》【】<=>{}()（）#&@“”^_|\\]")
_FULL_WIDTH = {ord(c) + 0xFEE0: ord(c) for c in string.ascii_letters + string.digits}
_FULL_WIDTH[0x3000] = ord(" ")
_CIRCLED = {chr(0x2460 + i): DIGITS[i + 1] if i < 9 else "十" for i in range(10)}
_OPERATORS = (("+", "加"), ("-", "减"), ("×", "乘"), ("÷", "除"), ("=", "等"))
_ARITHMETIC_WORDS = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等于"}
_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_SUPERSCRIPT_VALUES = dict(zip(_SUPERSCRIPTS, "0123456789xyn"))
_UNIT_WORDS = "%|°C|℃|度|摄氏度|cm2|cm²|cm3|cm³|cm|db|ds|kg|km|m2|m²|m³|m3|ml|m|mm|s"
_NUMBER = r"((-?)((\d+)(\.\d+)?)|(\.(\d+)))"


@lru_cache(maxsize=1)
def chinese_data() -> dict:
    with gzip.open(DATA_DIR / "chinese.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


# -- reading numbers ------------------------------------------------------------------------------


def _grouped(digits: str, zero_before: bool = True) -> List[str]:
    """The characters of an integer's reading, unit by unit (the official `_get_value`)."""
    significant = digits.lstrip("0")
    if not significant:
        return []
    if len(significant) == 1:
        leading_zero = zero_before and len(significant) < len(digits)
        return ([DIGITS[0]] if leading_zero else []) + [DIGITS[int(significant)]]
    power, unit = next((p, u) for p, u in UNITS if p < len(significant))
    return _grouped(digits[:-power]) + [unit] + _grouped(digits[-power:])


def cardinal(digits: str) -> str:
    """'1205' -> 一千二百零五; '10'..'19' start with 十, not 一十."""
    if not digits:
        return ""
    digits = digits.lstrip("0")
    if not digits:
        return DIGITS[0]
    parts = _grouped(digits)
    if len(parts) >= 2 and parts[0] == DIGITS[1] and parts[1] == "十":
        parts = parts[1:]
    return "".join(parts)


def digit_by_digit(digits: str, one_as_yao: bool = False) -> str:
    read = "".join(DIGITS[int(d)] for d in digits)
    return read.replace("一", "幺") if one_as_yao else read


def number(value: str) -> str:
    """'3.20' -> 三点二; '.5' -> 零点五; trailing zeros of the fraction kept as one 零."""
    whole, _, fraction = value.partition(".")
    if "." in fraction:
        raise ValueError(f"'{value}' has more than one decimal point")
    read = cardinal(whole)
    fraction = fraction.rstrip("0") + "0" if fraction.endswith("0") else fraction.rstrip("0")
    if fraction:
        read = (read or DIGITS[0]) + "点" + digit_by_digit(fraction)
    return read


def _signed(sign: str, value: str, minus: str = "负") -> str:
    return (minus if sign else "") + number(value)


# -- the rules, in the official order ------------------------------------------------------------


def _date(m: re.Match) -> str:
    year, month, day = m.group(1), m.group(3), m.group(5)
    read = f"{digit_by_digit(year)}年" if year else ""
    read += f"{cardinal(month)}月" if month else ""
    return read + (f"{cardinal(day)}{m.group(9)}" if day else "")


def _numeric_date(m: re.Match) -> str:
    return f"{digit_by_digit(m.group(1))}年{cardinal(m.group(3))}月{cardinal(m.group(4))}日"


def _clock_part(value: str) -> str:
    read = number(value.lstrip("0"))
    return DIGITS[0] + read if value.startswith("0") else read


def _clock(hour: str, minute: str, second: str, half_if: str) -> str:
    read = f"{number(hour)}点"
    if minute.lstrip("0"):
        read += "半" if int(half_if) == 30 else f"{_clock_part(minute)}分"
    if second and second.lstrip("0"):
        read += f"{_clock_part(second)}秒"
    return read


def _time(m: re.Match) -> str:
    read = _clock(m.group(1), m.group(2), m.group(4), m.group(2))
    if len(m.groups()) > 5:  # a range; its end reads 半 when the START's minutes are 30 (official quirk)
        read += "至" + _clock(m.group(6), m.group(7), m.group(9), m.group(2))
    return read


def _temperature(m: re.Match) -> str:
    # Always 度: the official rule compares the number's decimals, not its unit, with 摄氏度.
    return _signed(m.group(1), m.group(2), "零下") + "度"


def _units(sentence: str) -> str:
    for unit, reading in chinese_data()["measure_units"]:
        sentence = sentence.replace(unit, reading)
    return sentence


def _arithmetic(m: re.Match) -> str:
    return m.group(1) + _ARITHMETIC_WORDS[m.group(8)] + m.group(9)


def _power(m: re.Match) -> str:
    return "的" + "".join(_SUPERSCRIPT_VALUES[c] for c in m.group(0)) + "次方"


def _fraction(m: re.Match) -> str:
    return ("负" if m.group(1) else "") + f"{number(m.group(3))}分之{number(m.group(2))}"


def _percentage(m: re.Match) -> str:
    return ("负" if m.group(1) else "") + "百分之" + number(m.group(2))


def _mobile(m: re.Match) -> str:
    return "，".join(digit_by_digit(part, one_as_yao=True) for part in m.group(0).strip("+").split())


def _landline(m: re.Match) -> str:
    return "，".join(digit_by_digit(part, one_as_yao=True) for part in m.group(0).split("-"))


def _plain_number(m: re.Match) -> str:
    if m.group(5):  # '.5' alone
        return number(m.group(5))
    return _signed(m.group(1), m.group(2))


def _range(m: re.Match) -> str:
    return f"{_NUMBER_RE.sub(_plain_number, m.group(1))}到{_NUMBER_RE.sub(_plain_number, m.group(6))}"


def _version(m: re.Match) -> str:
    return "".join("点" if c == "." else number(c) for c in m.group(1))


def _counted(m: re.Match) -> str:
    read = number(m.group(1))
    about = "多" if m.group(2) == "+" else (m.group(2) or "")
    return ("两" if read == "二" else read) + about + m.group(3)


_NUMBER_RE = re.compile(r"(-?)((\d+)(\.\d+)?)|(\.(\d+))")


@lru_cache(maxsize=1)
def _rules() -> Tuple[Tuple[re.Pattern, Callable[[re.Match], str]], ...]:
    """(pattern, reading) pairs applied one after the other (arithmetic and units are separate)."""
    clock = r"([0-1]?[0-9]|2[0-3]):([0-5][0-9])(:([0-5][0-9]))?"
    operand = r"((-?)((\d+)(\.\d+)?[⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ]*)|(\.\d+[⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ]*)|([A-Za-z][⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ]*))"
    return (
        (re.compile(r"(\d{4}|\d{2})年((0?[1-9]|1[0-2])月)?(((0?[1-9])|((1|2)[0-9])|30|31)([日号]))?"), _date),
        (re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])"), _numeric_date),
        (re.compile(clock + r"(~|-)" + clock), _time),
        (re.compile(clock), _time),
        (re.compile(_NUMBER + f"({_UNIT_WORDS})[~]" + _NUMBER + f"({_UNIT_WORDS})"),
         lambda m: m.group(0).replace("~", "至")),
        (re.compile(r"(-?)(\d+(\.\d+)?)(°C|℃|度|摄氏度)"), _temperature),
    ), (
        (re.compile(f"[{_SUPERSCRIPTS}]+"), _power),
        (re.compile(r"(-?)(\d+)/(\d+)"), _fraction),
        (re.compile(r"(-?)(\d+(\.\d+)?)%"), _percentage),
        (re.compile(r"(?<!\d)((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})(?!\d)"), _mobile),
        (re.compile(r"(?<!\d)((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})(?!\d)"), _landline),
        (re.compile(r"(400)(-)?\d{3}(-)?\d{4}"), _landline),
        (re.compile(r"(?<![\d\+\-\×÷=])((-?)((\d+)(\.\d+)?))[-~]((-?)((\d+)(\.\d+)?))(?![\d\+\-\×÷=])"), _range),
        (re.compile(r"(-)(\d+)"), lambda m: _signed(m.group(1), m.group(2))),
        (re.compile(r"((\d+)(\.\d+)(\.\d+)?(\.\d+)+)"), _version),
        (re.compile(r"(-?)((\d+)(\.\d+))|(\.(\d+))"), _plain_number),
        (re.compile(r"(\d+)([多余几\+])?" + chinese_data()["quantifier_pattern"]), _counted),
        (re.compile(r"\d{3}\d*"), lambda m: digit_by_digit(m.group(0), one_as_yao=True)),
        (_NUMBER_RE, _plain_number),
    ), re.compile(operand + r"([\+\-\×÷=])" + operand)


def _spoken(sentence: str) -> str:
    data = chinese_data()
    to_simplified = data["traditional_to_simplified"]
    sentence = "".join(to_simplified.get(c, c) for c in sentence).translate(_FULL_WIDTH)
    before_units, after_units, arithmetic = _rules()
    for pattern, read in before_units:
        sentence = pattern.sub(read, sentence)
    sentence = _units(sentence)
    while arithmetic.search(sentence):
        sentence = arithmetic.sub(_arithmetic, sentence)
    for pattern, read in after_units:
        sentence = pattern.sub(read, sentence)
    return _symbols_read(sentence)


def _symbols_read(sentence: str) -> str:
    sentence = sentence.replace("/", "每")
    for mark, reading in _CIRCLED.items():
        sentence = sentence.replace(mark, reading)
    for letter, reading in data_greek().items():
        sentence = sentence.replace(letter, reading)
    for operator, reading in _OPERATORS:
        sentence = sentence.replace(operator, reading)
    return _DROPPED_AFTER.sub("", sentence)


def data_greek() -> dict:
    return chinese_data()["greek_letters"]


def sentences(text: str) -> List[str]:
    text = _DROPPED_BEFORE.sub("", text.replace(" ", ""))
    text = _SENTENCE_END_RE.sub(r"\1\n", text).strip()
    return [s.strip() for s in re.split(r"\n+", text)]


def keep_chinese(text: str) -> str:
    """Punctuation mapped to the kept marks; all that is neither Chinese nor kept is dropped."""
    text = text.replace("嗯", "恩").replace("呣", "母")
    text = _PUNCTUATION_RE.sub(lambda m: _PUNCTUATION_MAP[m.group()], text)
    return _NOT_KEPT_RE.sub("", text)


def spoken_sentences(text: str) -> List[str]:
    """Steps 1-2 of the module docstring: the sentences with numbers and symbols read out (what the
    official TextNormalizer gives; the Cantonese front end keeps its own punctuation rules)."""
    return [_spoken(sentence) for sentence in sentences(text)]


def normalize_chinese(text: str) -> str:
    """The text as the official Chinese front end reads it (see the module docstring)."""
    read = "".join(keep_chinese(sentence) for sentence in spoken_sentences(text))
    return _REPEATED_RE.sub(r"\1", read)
