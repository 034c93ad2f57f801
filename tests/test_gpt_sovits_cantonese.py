"""The gpt-sovits Cantonese front end against the official GPT-SoVITS code (cantonese_golden.json, made
by make_cantonese_golden.py with the same ToJyutping): numbers, times, prices, percentages, quotes,
brackets and tildes. Skipped without `voxmith[yue]` (ToJyutping); then Cantonese must be refused
with the install command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voxmith.engines.gpt_sovits import cantonese, frontend
from voxmith.engines.gpt_sovits.symbols import phone_ids
from voxmith.errors import EngineError

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "gpt_sovits" / "cantonese_golden.json")
                    .read_text(encoding="utf-8"))
needs_yue = pytest.mark.skipif(not cantonese.cantonese_available(), reason="ToJyutping not installed (voxmith[yue])")


@needs_yue
@pytest.mark.parametrize("row", GOLDEN["sentences"], ids=range(len(GOLDEN["sentences"])))
def test_phones_match_official(row):
    phones, word2ph, normalized = cantonese.cantonese_phones(row["text"])
    assert (list(phones), list(word2ph), normalized) == (row["phones"], row["word2ph"], row["normalized"])
    assert phone_ids(phones) == row["phone_ids"]


@needs_yue
def test_cantonese_is_asked_for_by_name_and_has_no_bert_features():
    text = "\u6211\u54cb\u4e00\u9f4a\u53bbshopping\u5566\u3002"
    assert frontend.resolve_language(text, "auto") != "yue"  # Chinese characters alone read as Mandarin
    reading = frontend.read_text(text, "yue")
    assert [r.language for r in reading.runs] == ["yue", "en", "yue"]
    assert all(r.word2ph is None for r in reading.runs)
    features = frontend.bert_features(reading.runs, None)  # no RoBERTa needed
    assert features.shape == (1024, len(reading.phone_ids)) and not features.any()
    pieces = frontend.prepare_text("\u4eca\u65e5\u5929\u6c23\u597d\u597d\uff0c\u5514\u8a72\u6652\u4f60", "yue")
    assert [p.language for p in pieces] == ["yue"] and pieces[-1].normalized.endswith(".")  # short tail merged


def test_cantonese_is_refused_with_the_install_command_without_the_extra(monkeypatch):
    monkeypatch.setattr(frontend, "SUPPORTED_LANGUAGES", ("en",))
    monkeypatch.setattr(cantonese, "cantonese_available", lambda: False)
    with pytest.raises(EngineError, match=r"voxmith\[yue\]"):
        frontend.resolve_language("\u4f62\u500b\u92e4\u982d", "yue")
