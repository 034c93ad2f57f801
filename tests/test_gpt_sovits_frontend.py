"""The gpt-sovits English text front end against the official GPT-SoVITS code.

Golden values: tests/fixtures/gpt_sovits/english_golden.json, made by make_english_golden.py from
the official `text/english.py` + `text/cleaner.py` + `TextPreprocessor` (commit 48b1a01) with
NLTK's real part-of-speech tagger. The tags the official run gave each token are stored too, so the
homograph rule is checked exactly even where NLTK's tagger data is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from voxmith.engines.gpt_sovits import frontend
from voxmith.engines.gpt_sovits.english import EnglishG2P, _tokenizer, homograph_table
from voxmith.engines.gpt_sovits.english_normalize import normalize_english
from voxmith.engines.gpt_sovits.pos_tags import NltkTagger, RuleTagger, find_tagger_folder, load_tagger
from voxmith.engines.gpt_sovits.symbols import phone_ids, symbols_v2
from voxmith.engines.gpt_sovits.text_split import METHODS, segments
from voxmith.errors import EngineError

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "gpt_sovits" / "english_golden.json")
                    .read_text(encoding="utf-8"))
SENTENCES = GOLDEN["sentences"]


class ReplayTagger:
    """Gives each token the tag the official run gave it."""

    name = "replay"

    def __init__(self, tags):
        self.tags = [tuple(pair) for pair in tags]

    def tag(self, tokens):
        assert [t for t, _ in self.tags] == list(tokens), "tokenisation differs from the official"
        return list(self.tags)


def _has_homograph(row) -> bool:
    table = homograph_table()
    return any(token.lower() in table for token, _ in row["pos_tags"])


@pytest.fixture(scope="module")
def g2p():
    return EnglishG2P(tagger=RuleTagger())


def test_symbol_table_is_the_official_v2_table():
    symbols = symbols_v2()
    assert len(symbols) == 732 and len(set(symbols)) == 732
    assert symbols[0] == "!" and "_" in symbols and "UNK" in symbols
    for row in SENTENCES:
        assert phone_ids(row["phones"]) == row["phone_ids"]


@pytest.mark.parametrize("row", SENTENCES, ids=[r["text"][:30] for r in SENTENCES])
def test_normalisation_matches_official(row):
    assert normalize_english(row["text"]) == row["normalized"]


@pytest.mark.parametrize("row", SENTENCES, ids=[r["text"][:30] for r in SENTENCES])
def test_phones_match_official_with_its_tags(g2p, row):
    g2p.tagger = ReplayTagger(row["pos_tags"])
    try:
        result = g2p(row["text"])
    finally:
        g2p.tagger = RuleTagger()
    assert list(result.phones) == row["phones"]
    assert result.normalized == row["normalized"]


def test_sentences_without_homographs_need_no_tagger(g2p):
    plain = [row for row in SENTENCES if not _has_homograph(row)]
    assert len(plain) >= 25
    for row in plain:
        assert list(g2p(row["text"]).phones) == row["phones"], row["text"]


def test_rule_tagger_reads_common_homographs(g2p):
    phones = " ".join(g2p("I refuse to collect the refuse. I will read it.").phones)
    assert phones.startswith("AY1 R IH0 F Y UW1 Z T UW1")  # the verb
    assert "DH AH0 R EH1 F Y UW2 Z" in phones  # the noun
    assert phones.endswith("R IY1 D IH1 T .")


def test_nltk_tagger_loads_from_a_data_folder(tmp_path):
    folder = tmp_path / "taggers" / "averaged_perceptron_tagger_eng"
    folder.mkdir(parents=True)
    for part, value in (("weights", {"bias": {"NN": 1.0}}), ("tagdict", {"refuse": "VBP"}),
                        ("classes", ["NN", "VBP"])):
        (folder / f"averaged_perceptron_tagger_eng.{part}.json").write_text(json.dumps(value))
    assert find_tagger_folder([tmp_path]) == folder
    tagger = load_tagger([tmp_path])
    assert isinstance(tagger, NltkTagger)
    assert tagger.tag(["refuse", "thing"]) == [("refuse", "VBP"), ("thing", "NN")]
    (folder / "averaged_perceptron_tagger_eng.weights.json").write_text("{broken")
    assert isinstance(load_tagger([tmp_path]), (RuleTagger, NltkTagger))  # damaged: no crash


def test_tokens_are_the_official_ones():
    for row in SENTENCES:
        assert _tokenizer().tokenize(row["normalized"]) == [t for t, _ in row["pos_tags"]]


@pytest.mark.parametrize("case", GOLDEN["splits"], ids=range(len(GOLDEN["splits"])))
def test_split_methods_match_official(case):
    for method, function in METHODS.items():
        assert function(case["text"]) == case[method], method


def test_prepared_pieces_match_official_preprocessing(g2p, monkeypatch):
    monkeypatch.setattr(frontend, "default_g2p", lambda: g2p)
    checked = 0
    for row in SENTENCES:
        if _has_homograph(row):
            continue  # their pieces are tagged without the sentence's context
        pieces = frontend.prepare_text(row["text"], "en", "cut5")
        assert [(p.normalized, list(p.phone_ids)) for p in pieces] == \
            [(s["normalized"], s["phone_ids"]) for s in row["preprocess_cut5"]], row["text"]
        checked += 1
    assert checked >= 25


def test_phones_for_and_bert_features(g2p, monkeypatch):
    monkeypatch.setattr(frontend, "default_g2p", lambda: g2p)
    ids, word2ph, normalized = frontend.phones_for("Hi.", "en")
    # Under 6 phones: read once more with a '.' in front (and kept, however short, as officially).
    assert word2ph is None and normalized == ". Hi." and ids == phone_ids([".", "HH", "AY1", "."])
    features = frontend.bert_features(frontend.read_text("Hi.", "en").runs)
    assert features.shape == (1024, len(ids)) and features.dtype == np.float32 and not features.any()
    assert frontend.prepare_text("   \n", "en") == []
    assert segments("!!! ...", "cut5") == []


def test_languages_without_a_front_end_are_refused_with_words(monkeypatch):
    monkeypatch.setattr(frontend, "SUPPORTED_LANGUAGES", ("en",))  # as without voxmith[zh]
    with pytest.raises(EngineError, match="Chinese"):
        frontend.prepare_text("\u4f60\u597d\uff0c\u4e16\u754c\u3002", "auto")
    with pytest.raises(EngineError, match="Korean.*not part of voxmith"):
        frontend.prepare_text("Hello.", "ko")
    with pytest.raises(EngineError, match="Unknown language"):
        frontend.prepare_text("Hello.", "xx")
    with pytest.raises(EngineError, match="split method"):
        frontend.prepare_text("Hello.", "en", "cut9")
    assert frontend.resolve_language("Hello there.", "auto") == "en"


def test_shared_g2p_takes_a_tagger_downloaded_meanwhile(tmp_path, monkeypatch):
    from voxmith.engines.gpt_sovits import english

    monkeypatch.setattr(english, "_default", EnglishG2P(tagger=RuleTagger()))
    assert isinstance(english.default_g2p([tmp_path]).tagger, RuleTagger)
    folder = tmp_path / "taggers" / "averaged_perceptron_tagger_eng"
    folder.mkdir(parents=True)
    for part, value in (("weights", {}), ("tagdict", {"refuse": "NN"}), ("classes", ["NN"])):
        (folder / f"averaged_perceptron_tagger_eng.{part}.json").write_text(json.dumps(value))
    assert isinstance(english.default_g2p([tmp_path]).tagger, NltkTagger)
