"""The gpt-sovits Japanese front end against the official GPT-SoVITS code (japanese_golden.json, made
by make_japanese_golden.py with the same OpenJTalk). Skipped where OpenJTalk with its dictionary is
not installed (`pip install 'voxmith[ja]'`); then Japanese must be refused with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voxmith.engines.gpt_sovits import frontend, japanese
from voxmith.engines.gpt_sovits.symbols import phone_ids
from voxmith.errors import EngineError

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "gpt_sovits" / "japanese_golden.json")
                    .read_text(encoding="utf-8"))
needs_openjtalk = pytest.mark.skipif(not japanese.japanese_available(),
                                     reason="OpenJTalk with a dictionary is not installed (voxmith[ja])")


@needs_openjtalk
@pytest.mark.parametrize("row", GOLDEN["sentences"], ids=range(len(GOLDEN["sentences"])))
def test_phones_match_official(row):
    phones, normalized = japanese.japanese_phones(row["text"])
    assert list(phones) == row["phones"] and normalized == row["normalized"]
    assert phone_ids(phones) == row["phone_ids"]


@needs_openjtalk
def test_japanese_text_is_cut_and_read_with_english_words_by_the_english_front_end():
    assert frontend.resolve_language("\u3053\u3093\u306b\u3061\u306f\u3001world\u3002", "auto") == "ja"
    pieces = frontend.prepare_text("\u4eca\u65e5\u306f\u3044\u3044\u5929\u6c17\u3067\u3059\u306d\u3002"
                                   "Hello world\u3092\u8a00\u3044\u307e\u3059\u3002", "auto")
    assert [p.language for p in pieces] == ["ja", "ja"]
    assert pieces[0].text.endswith("\u3002") and len(pieces) == 2
    english = phone_ids(["HH", "AH0", "L", "OW1"])
    ids = list(pieces[1].phone_ids)
    assert any(ids[i:i + 4] == english for i in range(len(ids)))  # "Hello" read as English
    assert japanese.split_english("\u79c1\u306fJohn Smith\u3067\u3059") == [
        ("ja", "\u79c1\u306f"), ("en", "John Smith"), ("ja", "\u3067\u3059")]


def test_japanese_is_refused_with_the_reason_when_openjtalk_is_missing(monkeypatch):
    monkeypatch.setattr(frontend, "SUPPORTED_LANGUAGES", ("en",))
    with pytest.raises(EngineError, match="voxmith\\[ja\\]"):
        monkeypatch.setattr(japanese, "japanese_available", lambda: False)
        frontend.resolve_language("\u3053\u3093\u306b\u3061\u306f", "ja")
    with pytest.raises(EngineError, match="Japanese"):
        frontend.resolve_language("\u3053\u3093\u306b\u3061\u306f", "auto")


def test_studio_leaves_japanese_to_the_engine():
    """voxmith's English reader and English recogniser stay away from Japanese text."""
    import numpy as np

    from voxmith.studio.ranking import score_take
    from voxmith.text import normalize_text

    text = "\u5024\u6bb5\u306f1234\u5186\u3067\u3059\u3002"
    assert normalize_text(text) == text
    assert normalize_text("It costs $5.") == "It costs five dollars."

    class Encoder:
        def embed(self, samples, rate):
            return np.ones(4, np.float32)

    class NoTranscriber:
        def transcribe(self, *args, **kwargs):
            raise AssertionError("Japanese takes must not be transcribed with the English recogniser")

    scores = score_take(np.zeros(1600, np.float32), 16000, text, np.ones(4, np.float32), Encoder(), NoTranscriber())
    assert scores.wer is None and scores.deletions == 0 and scores.score == scores.similarity
