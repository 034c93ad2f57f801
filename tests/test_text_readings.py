"""What a reader says for dates, fractions, phone numbers, units, temperatures, web and mail
addresses: one table, through the whole English front end."""

import pytest

from voxmith.text import normalize_text, word_error_rate


@pytest.mark.parametrize("written,spoken", [
    # dates: month/day/year, unless the first number cannot be a month; ISO dates
    ("Due 12/03/2023.", "Due December third, twenty twenty-three."),
    ("Born 25/12/1990", "Born December twenty-fifth, nineteen ninety"),
    ("On 2024-07-04 we met", "On July fourth, twenty twenty-four we met"),
    ("by 1/2/05", "by January second, oh five"),
    # fractions
    ("Add 1/2 cup of sugar", "Add one half cup of sugar"),
    ("3/4 of them", "three quarters of them"),
    ("2/3 done", "two thirds done"),
    ("1 1/2 hours", "one and a half hours"),
    ("5/8 inch", "five eighths inch"),
    ("open 24/7", "open twenty-four seven"),
    ("a 50/50 chance", "a fifty fifty chance"),
    ("5/16 inch", "five sixteenths inch"),
    # phone numbers, digit by digit in their groups
    ("Call 555-1234 now", "Call five five five, one two three four now"),
    ("Call (555) 123-4567.", "Call five five five, one two three, four five six seven."),
    ("or 555-123-4567", "or five five five, one two three, four five six seven"),
    ("Dial +1 555 123 4567", "Dial plus one, five five five, one two three, four five six seven"),
    # units and temperatures
    ("It weighs 5 kg.", "It weighs five kilograms."),
    ("only 1 kg", "only one kilogram"),
    ("a 2.5km walk", "a two point five kilometers walk"),
    ("at 100 km/h", "at one hundred kilometers per hour"),
    ("sound travels at 343 m/s", "sound travels at three hundred and forty-three meters per second"),
    ("about 1 m/s", "about one meter per second"),
    ("It is 20°C outside", "It is twenty degrees Celsius outside"),
    ("-5 °F tonight", "minus five degrees Fahrenheit tonight"),
    ("a 500 MB file", "a five hundred megabytes file"),
    ("wait 30 min", "wait thirty minutes"),
    ("I have 5 M left", "I have five M left"),  # a capital single letter is not a unit
    # web and mail addresses
    ("Mail jane.doe@example.com today", "Mail jane dot doe at example dot com today"),
    ("See https://www.example.com/docs.", "See www dot example dot com slash docs."),
    ("Visit www.voxmith.org, then", "Visit www dot voxmith dot org, then"),
    ("at http://test.io/a-b?x=1", "at test dot io slash a dash b question mark x equals one"),
])
def test_readings(written, spoken):
    assert normalize_text(written) == spoken


def test_a_transcript_of_the_reading_scores_as_correct():
    """Whisper writes what it hears; both sides go through the front end, so they agree."""
    assert word_error_rate("Call 555-1234 on 12/03/2023.", "Call 555-1234 on December 3rd, 2023.").wer == 0.0
