"""English text front end: normalisation for speech, sentence splitting, and word error rate."""

from voxmith.text.normalize import normalize_text
from voxmith.text.sentences import split_paragraphs, split_sentences
from voxmith.text.wer import WordErrors, word_error_rate, word_errors_by_part, words_for_scoring

__all__ = ["normalize_text", "split_paragraphs", "split_sentences", "WordErrors", "word_error_rate", "word_errors_by_part",
           "words_for_scoring"]
