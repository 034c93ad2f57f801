"""Written forms a reader says in words of their own: web and mail addresses, dates, phone numbers,
fractions and units of measure. `normalize_text` applies `spell_readings` before it spells numbers,
so what is left here as digits is read as a number afterwards ("5 kilograms" -> "five kilograms").

Conventions (American English, like the bundled voices): 12/03/2023 is month/day/year unless the
first number cannot be a month; phone numbers are read digit by digit in their groups; a fraction
is read as one ("three quarters") only with a usual denominator; "50/50", "24/7" and "9/11" are read
as two numbers.
"""

from __future__ import annotations

import re

from num2words import num2words

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DENOMINATORS = {2: ("half", "halves"), 4: ("quarter", "quarters")}
FRACTION_DENOMINATORS = frozenset(range(2, 11)) | {12, 16}  # 9/11 or 24/7 are not fractions
# unit -> (singular, plural); matched only right after a number, with or without a space.
UNITS = {
    "km/h": ("kilometer per hour", "kilometers per hour"), "mph": ("mile per hour", "miles per hour"),
    "m/s": ("meter per second", "meters per second"), "km/s": ("kilometer per second", "kilometers per second"),
    "ft/s": ("foot per second", "feet per second"),
    "kg": ("kilogram", "kilograms"), "mg": ("milligram", "milligrams"), "g": ("gram", "grams"),
    "lb": ("pound", "pounds"), "lbs": ("pound", "pounds"), "oz": ("ounce", "ounces"),
    "km": ("kilometer", "kilometers"), "cm": ("centimeter", "centimeters"), "mm": ("millimeter", "millimeters"),
    "m": ("meter", "meters"), "mi": ("mile", "miles"), "ft": ("foot", "feet"),
    "ml": ("milliliter", "milliliters"), "l": ("liter", "liters"),
    "ms": ("millisecond", "milliseconds"), "min": ("minute", "minutes"), "h": ("hour", "hours"),
    "hz": ("hertz", "hertz"), "khz": ("kilohertz", "kilohertz"), "mhz": ("megahertz", "megahertz"),
    "ghz": ("gigahertz", "gigahertz"), "kb": ("kilobyte", "kilobytes"), "mb": ("megabyte", "megabytes"),
    "gb": ("gigabyte", "gigabytes"), "tb": ("terabyte", "terabytes"), "kw": ("kilowatt", "kilowatts"),
    "kwh": ("kilowatt hour", "kilowatt hours"), "w": ("watt", "watts"), "v": ("volt", "volts"),
}
SINGLE_LETTER_UNITS = frozenset("gmlhWVL")
TEMPERATURE_SCALES = {"c": "Celsius", "f": "Fahrenheit", "k": "kelvin"}

_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)]", re.IGNORECASE)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_DATE_SLASH = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})\b")
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_PHONE = re.compile(r"(?<![\w-])(\+\d{1,3}[ .-]?)?(?:\((\d{3})\)\s?|(\d{3})[ .-])?(\d{3})-(\d{4})(?![\w-])"
                    r"|(?<![\w-])(\+\d{1,3}[ .-]?)?(\d{3})[ .](\d{3})[ .](\d{4})(?![\w-])")
_MIXED_FRACTION = re.compile(r"\b(\d+)\s+(\d{1,2})/(\d{1,2})\b")
_FRACTION = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?![\d/])")
_TEMPERATURE = re.compile(rf"(-?{_NUMBER})\s?°\s?([CFK])\b")
_UNIT = re.compile(rf"\b({_NUMBER}(?:[eE][+-]?\d+)?)\s?({'|'.join(re.escape(u) for u in sorted(UNITS, key=len, reverse=True))})"
                   r"(?![\w/])", re.IGNORECASE)


def _spell_address_part(part: str) -> str:
    """'jane.doe-smith' -> 'jane dot doe dash smith'; digits are read one by one."""
    words = {".": " dot ", "-": " dash ", "_": " underscore ", "/": " slash ", "+": " plus ", "?": " question mark ",
             "=": " equals ", "&": " and ", "#": " hash ", "~": " tilde ", ":": " colon ", "%": " percent "}
    spelled = "".join(words.get(c, c) for c in part)
    spelled = re.sub(r"\d+", lambda m: " ".join(DIGITS[int(d)] for d in m.group(0)), spelled)
    return re.sub(r"\s+", " ", spelled).strip()


def _url(match: re.Match) -> str:
    url = re.sub(r"^https?://", "", match.group(0), flags=re.IGNORECASE).rstrip("/")
    return _spell_address_part(url)


def _email(match: re.Match) -> str:
    user, _, domain = match.group(0).partition("@")
    return f"{_spell_address_part(user)} at {_spell_address_part(domain)}"


def _date(month: int, day: int, year: str) -> str | None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    year_words = num2words(int(year), to="year") if len(year) == 4 else f"{'oh ' if year[0] == '0' else ''}" \
        f"{num2words(int(year))}"
    return f"{MONTHS[month - 1]} {num2words(day, to='ordinal')}, {year_words}"


def _slash_date(match: re.Match) -> str:
    first, second, year = int(match.group(1)), int(match.group(2)), match.group(3)
    if first > 12:  # 25/12/2023 can only be day/month
        first, second = second, first
    return _date(first, second, year) or match.group(0)


def _iso_date(match: re.Match) -> str:
    return _date(int(match.group(2)), int(match.group(3)), match.group(1)) or match.group(0)


def _digits(group: str) -> str:
    return " ".join(DIGITS[int(d)] for d in group if d.isdigit())


def _phone(match: re.Match) -> str:
    groups = [g for g in match.groups() if g]
    spoken = []
    for group in groups:
        digits = _digits(group)
        spoken.append(f"plus {digits}" if group.strip().startswith("+") else digits)
    return ", ".join(spoken)


def _fraction_words(numerator: int, denominator: int) -> str | None:
    if not (0 < numerator < denominator and denominator in FRACTION_DENOMINATORS):
        return None
    one, many = DENOMINATORS.get(denominator, (num2words(denominator, to="ordinal"),) * 2)
    if denominator not in DENOMINATORS:
        many = one + "s"
    if numerator == 1:
        return f"one {one}"
    return f"{num2words(numerator)} {many}"


def _mixed_fraction(match: re.Match) -> str:
    fraction = _fraction_words(int(match.group(2)), int(match.group(3)))
    if fraction is None:
        return match.group(0)
    fraction = "a half" if fraction == "one half" else fraction
    return f"{match.group(1)} and {fraction}"


def _fraction(match: re.Match) -> str:
    # Not a fraction: read both numbers, as in "twenty-four seven", "fifty fifty", "nine eleven".
    return _fraction_words(int(match.group(1)), int(match.group(2))) or f"{match.group(1)} {match.group(2)}"


def _temperature(match: re.Match) -> str:
    number = match.group(1)
    return f"{number} {'degree' if number.lstrip('-') == '1' else 'degrees'} {TEMPERATURE_SCALES[match.group(2).lower()]}"


def _unit(match: re.Match) -> str:
    number, unit = match.group(1), match.group(2)
    if len(unit) == 1 and unit not in SINGLE_LETTER_UNITS:  # "5 M" (million?), "3 G": not read as units
        return match.group(0)
    one, many = UNITS[unit.lower()]
    return f"{number} {one if number == '1' else many}"


def spell_readings(text: str) -> str:
    """Addresses, dates, phone numbers, fractions, temperatures and units in words; other numbers
    stay digits for `normalize_text`'s number passes."""
    text = _URL.sub(_url, text)
    text = _EMAIL.sub(_email, text)
    text = _DATE_SLASH.sub(_slash_date, text)
    text = _DATE_ISO.sub(_iso_date, text)
    text = _PHONE.sub(_phone, text)
    text = _MIXED_FRACTION.sub(_mixed_fraction, text)
    text = _FRACTION.sub(_fraction, text)
    text = _TEMPERATURE.sub(_temperature, text)
    return _UNIT.sub(_unit, text)
