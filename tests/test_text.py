"""The English front end: what gets said for numbers, abbreviations, symbols; sentence splitting; WER."""

import pytest

from voxmith.text import normalize_text, split_paragraphs, split_sentences, word_error_rate


@pytest.mark.parametrize("written,spoken", [
    ("Dr. Smith arrived.", "doctor Smith arrived."),
    ("It costs $5.50.", "It costs five dollars and fifty cents."),
    ("It costs $1.", "It costs one dollar."),
    ("A £3 million deal", "A three million pounds deal"),
    ("Up 12.5% today", "Up twelve point five percent today"),
    ("In 1999 and 2024", "In nineteen ninety-nine and twenty twenty-four"),
    ("In 2005", "In two thousand and five"),
    ("1,234 people", "one thousand, two hundred and thirty-four people"),
    ("the 21st century", "the twenty-first century"),
    ("at 3:30 and 4:05", "at three thirty and four oh five"),
    ("salt & pepper", "salt and pepper"),
    ("-4 degrees", "minus four degrees"),
    ("e.g. this vs. that", "for example this versus that"),
    ("It’s “quoted” — here", "It's \"quoted\", here"),
])
def test_normalize(written, spoken):
    assert normalize_text(written) == spoken


def test_words_used_as_words_are_left_alone():
    assert normalize_text("I said no to the co op") == "I said no to the co op"


def test_split_sentences_respects_abbreviations():
    assert split_sentences("Hello there. Dr. Smith is in! Is he? Yes, Mr. Jones.") == [
        "Hello there.", "Dr. Smith is in!", "Is he?", "Yes, Mr. Jones."]


def test_split_paragraphs():
    assert split_paragraphs("One. Two!\n\nThree?\r\n\r\nFour") == [["One.", "Two!"], ["Three?"], ["Four"]]


def test_long_sentence_is_cut_at_commas_then_words():
    long = ", ".join(["a clause with several words in it"] * 20) + "."
    pieces = split_sentences(long, max_chars=120)
    assert len(pieces) > 4 and all(len(p) <= 120 for p in pieces)
    assert " ".join(pieces).replace(",", "").split() == long.replace(",", "").split()
    words = " ".join(["word"] * 100)
    assert all(len(p) <= 50 for p in split_sentences(words, max_chars=50))


def test_wer_counts_skips_and_repeats():
    assert word_error_rate("Dr. Smith paid $5", "doctor smith paid five dollars").wer == 0.0
    skipped = word_error_rate("the quick brown fox jumps", "the quick fox jumps")
    assert skipped.deletions == 1 and skipped.wer == pytest.approx(0.2)
    repeated = word_error_rate("the quick brown fox", "the quick quick brown fox")
    assert repeated.insertions == 1
    assert word_error_rate("hello", "").wer == 1.0
