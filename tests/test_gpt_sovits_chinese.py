"""The gpt-sovits Chinese front end and BERT features against the official GPT-SoVITS code.

chinese_golden.json (make_chinese_golden.py): phones, word2ph and normalised text of the official
`clean_text(text, "zh", "v2")` on its pypinyin path, for 30 sentences (numbers, dates, times,
phone numbers, percentages, units, arithmetic, traditional and full-width characters, polyphones,
tone sandhi of 一/不/third tones, neutral tones, erhua) and Chinese-English runs.
chinese_bert.pt + tiny_roberta/ (make_chinese_bert_fixtures.py): the official get_bert_feature with a
tiny random-weight RoBERTa. g2pw_golden.json + tiny_g2pw/ (make_g2pw_fixtures.py): the official G2PW
path (OpenCC, context windows, tokens, masks, the ONNX model, the correction list) with a tiny
stand-in model of the real one's interface. Tests of the front end skip without `voxmith[zh]` (jieba, pypinyin);
then Chinese must be refused with the install command.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_gpt_sovits_weights import clean_env, voxmith  # noqa: F401  (pytest fixtures)
from voxmith.audio.dsp import resample
from voxmith.engines.gpt_sovits import chinese, frontend, weights
from voxmith.engines.gpt_sovits.chinese_bert import ChineseBert
from voxmith.engines.gpt_sovits.engine import GptSovitsEngine, GptSovitsSettings
from voxmith.engines.gpt_sovits.g2pw import G2PW
from voxmith.engines.gpt_sovits.symbols import phone_ids
from voxmith.errors import EngineError, VoxmithError

FIXTURES = Path(__file__).parent / "fixtures" / "gpt_sovits"
GOLDEN = json.loads((FIXTURES / "chinese_golden.json").read_text(encoding="utf-8"))
G2PW_GOLDEN = json.loads((FIXTURES / "g2pw_golden.json").read_text(encoding="utf-8"))
TINY_ROBERTA = FIXTURES / "tiny_roberta"
TINY_G2PW = FIXTURES / "tiny_g2pw"
needs_zh = pytest.mark.skipif(not chinese.chinese_available(), reason="jieba/pypinyin not installed (voxmith[zh])")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@needs_zh
@pytest.mark.parametrize("row", GOLDEN["sentences"], ids=range(len(GOLDEN["sentences"])))
def test_phones_match_official(row):
    phones, word2ph, normalized = chinese.chinese_phones(row["text"])
    assert normalized == row["normalized"]
    assert list(phones) == row["phones"] and list(word2ph) == row["word2ph"]
    assert phone_ids(phones) == row["phone_ids"]


@needs_zh
@pytest.mark.parametrize("row", GOLDEN["mixed"], ids=range(len(GOLDEN["mixed"])))
def test_chinese_with_english_words_is_read_in_runs(row, monkeypatch):
    reading = frontend.read_text(row["text"], "zh")
    official = row["runs"]
    assert [(r.language, r.normalized, r.phone_count) for r in reading.runs] == \
        [(r["language"], r["normalized"], len(r["phone_ids"])) for r in official]
    assert list(reading.phone_ids) == [i for r in official for i in r["phone_ids"]]
    assert [r.word2ph for r in reading.runs if r.language == "zh"] == \
        [tuple(r["word2ph"]) for r in official if r["language"] == "zh"]


def tiny_g2pw() -> G2PW:
    return G2PW(TINY_G2PW, TINY_ROBERTA / "tokenizer.json")


@needs_zh
def test_g2pw_readings_match_official():
    converter = G2PW_GOLDEN["converter"]
    assert tiny_g2pw().readings(converter["sentences"]) == converter["readings"]


@needs_zh
def test_phones_with_g2pw_match_official():
    g2pw = tiny_g2pw()
    differ = 0
    for row, plain in zip(G2PW_GOLDEN["sentences"], GOLDEN["sentences"]):
        phones, word2ph, normalized = chinese.chinese_phones(row["text"], g2pw)
        assert (list(phones), list(word2ph), normalized) == (row["phones"], row["word2ph"], row["normalized"]), row["text"]
        differ += list(phones) != plain["phones"]
    assert differ >= 5  # the stand-in's choices and the correction list do change readings


def test_g2pw_folder_without_its_files_is_refused(tmp_path):
    with pytest.raises(EngineError, match="models download gpt-sovits"):
        G2PW(tmp_path, TINY_ROBERTA / "tokenizer.json")


@needs_zh
def test_auto_reads_chinese_and_pieces_end_with_a_chinese_stop():
    assert frontend.resolve_language("\u4f60\u597d\uff0cworld\u3002", "auto") == "zh"
    pieces = frontend.prepare_text("\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u53bb\u516c\u56ed"
                                   "\u6563\u6b65\u5427", "auto")
    assert [p.language for p in pieces] == ["zh", "zh"] and pieces[-1].normalized.endswith(".")
    ids, word2ph, normalized = frontend.phones_for("\u597d\u3002", "zh")  # under 6 phones: '.' in front
    assert normalized == ".\u597d." and word2ph == [1, 2, 1] and len(ids) == 4


def test_bert_features_match_official():
    golden = torch.load(FIXTURES / "chinese_bert.pt")
    bert = ChineseBert.load(TINY_ROBERTA)
    assert len(bert.model.encoder.layer) == 2  # the official third-last hidden state of 4 layers
    for row in golden["rows"]:
        ours = bert.phone_features(row["normalized"], row["word2ph"])
        assert ours.shape == tuple(row["features"].shape) and ours.dtype == np.float32
        torch.testing.assert_close(torch.from_numpy(ours), row["features"], rtol=1e-5, atol=1e-5)


def bert_1024(seed: int = 0) -> ChineseBert:
    """A tiny random RoBERTa with the real feature width (the t2s model projects 1024 -> d)."""
    from tokenizers import Tokenizer
    from transformers import BertConfig, BertModel

    tokenizer = Tokenizer.from_file(str(TINY_ROBERTA / "tokenizer.json"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=1024, num_hidden_layers=3,
                            num_attention_heads=4, intermediate_size=32, max_position_embeddings=128)
        return ChineseBert(BertModel(config, add_pooling_layer=False), tokenizer)


@needs_zh
def test_bert_features_are_zero_outside_chinese_runs():
    bert = bert_1024()
    reading = frontend.read_text("\u6211\u559c\u6b22\u7528Python\u5199\u4ee3\u7801\u3002", "zh")
    features = frontend.bert_features(reading.runs, bert)
    assert features.shape == (1024, len(reading.phone_ids))
    english = reading.runs[1]
    start = reading.runs[0].phone_count
    assert english.language == "en" and not features[:, start:start + english.phone_count].any()
    assert np.abs(features[:, :start]).min(axis=0).max() > 0  # Chinese phones carry features
    # one character's feature repeated over its phones
    first = reading.runs[0]
    assert first.word2ph[0] == 2 and np.array_equal(features[:, 0], features[:, 1])
    with pytest.raises(EngineError, match="chinese-roberta"):
        frontend.bert_features(reading.runs, None)


@needs_zh
def test_engine_speaks_chinese_with_tiny_models(demo_audio):
    from tests.test_gpt_sovits_engine import tiny_models

    models = tiny_models()
    models.chinese_bert = bert_1024()
    engine = GptSovitsEngine.with_models(models)
    mono = demo_audio.samples.astype(np.float32)
    rate = demo_audio.sample_rate_hz
    conditioning = {"reference_16k": resample(mono, rate, 16000)[:16000 * 4],
                    "reference_32k": resample(mono, rate, 32000)[:32000 * 4],
                    "reference_text": np.asarray("\u4eca\u5929\u5929\u6c14\u5f88\u597d\u3002"),
                    "reference_language": np.asarray("zh")}
    settings = GptSovitsSettings(language="zh", top_k=5)
    read_by_bert = []
    features = models.chinese_bert.phone_features
    models.chinese_bert.phone_features = lambda text, word2ph: read_by_bert.append(text) or features(text, word2ph)
    takes = engine.synthesize("\u4f60\u597d\uff0c\u4e16\u754c\uff01\u8fd9\u662f2024\u5e74\u3002", conditioning,
                              settings, seed=3, candidates=1)
    take = takes[0]
    assert read_by_bert.count("\u4eca\u5929\u5929\u6c14\u5f88\u597d.") == 1  # the transcript once, not per piece
    assert len(read_by_bert) == 3
    del models.chinese_bert.phone_features
    assert take.samples.ndim == 1 and take.samples.size > 0 and np.isfinite(take.samples).all()
    # cut5 pieces; those under 5 characters joined to the next, as officially
    assert take.details["pieces"] == ["\u4f60\u597d,\u4e16\u754c!", "\u8fd9\u662f\u4e8c\u96f6\u4e8c\u56db\u5e74."]
    again = engine.synthesize("\u4f60\u597d\uff0c\u4e16\u754c\uff01\u8fd9\u662f2024\u5e74\u3002", conditioning,
                              settings, seed=3, candidates=1)[0]
    assert np.array_equal(again.samples, take.samples)
    assert engine.resolved_settings(settings).chinese_g2p == "pypinyin"  # no G2PW model: pypinyin reads
    with pytest.raises(VoxmithError, match="G2PWModel.zip"):
        engine.synthesize("\u4f60\u597d\u3002", conditioning, GptSovitsSettings(language="zh", chinese_g2p="g2pw"), seed=3)
    models.g2pw = tiny_g2pw()
    calls = []
    read = models.g2pw.readings
    models.g2pw.readings = lambda sentences: calls.append(list(sentences)) or read(sentences)
    assert engine.resolved_settings(settings).chinese_g2p == "g2pw"
    with_g2pw = engine.synthesize("\u94f6\u884c\u7684\u884c\u957f\u8d70\u5728\u4eba\u884c\u9053\u4e0a\u3002",
                                  conditioning, settings, seed=3)[0]
    assert np.isfinite(with_g2pw.samples).all() and with_g2pw.samples.size > 0
    assert ["\u94f6\u884c\u7684\u884c\u957f\u8d70\u5728\u4eba\u884c\u9053\u4e0a."] in calls  # the piece
    assert ["\u4eca\u5929\u5929\u6c14\u5f88\u597d."] in calls  # and the reference transcript
    models.g2pw = None
    models.chinese_bert = None
    with pytest.raises(VoxmithError, match="Chinese BERT"):
        engine.synthesize("\u4f60\u597d\uff0c\u4e16\u754c\u3002", conditioning, settings, seed=3)


def test_chinese_is_refused_with_the_install_command_without_the_extra(monkeypatch):
    monkeypatch.setattr(frontend, "SUPPORTED_LANGUAGES", ("en",))
    monkeypatch.setattr(chinese, "chinese_available", lambda: False)
    with pytest.raises(EngineError, match=r"voxmith\[zh\]"):
        frontend.resolve_language("\u4f60\u597d", "zh")
    with pytest.raises(EngineError, match="Chinese"):
        frontend.resolve_language("\u4f60\u597d", "auto")


def test_missing_roberta_names_the_download(tmp_path, monkeypatch):
    for var in ("VOXMITH_GPT_SOVITS_MODELS", "GPT_SOVITS_HOME", "HF_HOME", "HF_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(VoxmithError, match="models download gpt-sovits --only chinese-roberta"):
        weights.require_chinese(models_dir=tmp_path / "models")
    folder = tmp_path / "models" / weights.CHINESE_BERT
    folder.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "pytorch_model.bin"):
        (folder / name).write_bytes((TINY_ROBERTA / name).read_bytes())
    assert weights.require_chinese(models_dir=tmp_path / "models") == folder
    assert ChineseBert.load(folder).phone_features("\u4f60\u597d.", [2, 2, 1]).shape == (32, 5)


def _g2pw_zip() -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(TINY_G2PW.iterdir()):
            zipped.write(path, f"G2PWModel/{path.name}")  # the official zip's layout
    return archive.getvalue()


@needs_zh
def test_chinese_models_download_and_are_found(voxmith, server, monkeypatch, tmp_path):  # noqa: F811
    monkeypatch.setattr(weights, "chinese_available", lambda: True)
    for name in ("config.json", "tokenizer.json", "pytorch_model.bin"):
        server.files[name] = (TINY_ROBERTA / name).read_bytes()
    server.files[weights.G2PW_ZIP] = _g2pw_zip()
    chinese_files = [f"{weights.CHINESE_BERT}/{n}" for n in ("config.json", "tokenizer.json", "pytorch_model.bin")]
    only = [arg for path in chinese_files + [weights.G2PW_ZIP] for arg in ("--only", path)]
    result = voxmith("models", "download", "gpt-sovits", *only)
    assert result.exit_code == 0, result.output
    workspace = voxmith.models.parent
    folder = weights.find_g2pw(workspace_models=workspace)
    assert folder == voxmith.models / "G2PWModel" and not (voxmith.models / weights.G2PW_ZIP).exists()
    bert_folder = weights.require_chinese(workspace_models=workspace)
    converter = G2PW_GOLDEN["converter"]
    assert G2PW(folder, bert_folder / "tokenizer.json").readings(converter["sentences"]) == converter["readings"]
    again = voxmith("models", "download", "gpt-sovits", *only)
    assert again.exit_code == 0 and "Nothing to download" in again.output
    # an official install keeps it in GPT_SoVITS/text/G2PWModel
    install = tmp_path / "GPT-SoVITS"
    (install / "GPT_SoVITS" / "pretrained_models").mkdir(parents=True)
    (install / "GPT_SoVITS" / "text" / "G2PWModel").mkdir(parents=True)
    (install / "GPT_SoVITS" / "text" / "G2PWModel" / "g2pW.onnx").write_bytes(b"onnx")
    monkeypatch.setenv("GPT_SOVITS_HOME", str(install))
    assert weights.find_g2pw() == install / "GPT_SoVITS" / "text" / "G2PWModel"


def test_studio_leaves_chinese_to_the_engine():
    """voxmith's English reader and English recogniser stay away from Chinese text."""
    from voxmith.studio.ranking import score_take
    from voxmith.text import normalize_text

    text = "\u8fd9\u4e2a\u82f9\u679c3\u5757\u94b1\uff0c\u6211\u4e70\u4e862\u4e2a\u3002"
    assert normalize_text(text) == text

    class Encoder:
        def embed(self, samples, rate):
            return np.ones(4, np.float32)

    class NoTranscriber:
        def transcribe(self, *args, **kwargs):
            raise AssertionError("Chinese takes must not be transcribed with the English recogniser")

    scores = score_take(np.zeros(1600, np.float32), 16000, text, np.ones(4, np.float32), Encoder(), NoTranscriber())
    assert scores.wer is None and scores.score == scores.similarity


def test_a_fine_tuned_variant_reads_chinese_with_the_stock_engines_models():
    """A variant made by `load_finetune` holds copies of the GPT and SoVITS only; the RoBERTa and G2PW
    it reads Chinese with are the stock engine's (loaded from files once, never fine-tuned)."""
    from types import SimpleNamespace

    from voxmith.engines.gpt_sovits.engine import GptSovitsEngine

    stock, variant = GptSovitsEngine(), GptSovitsEngine()
    bert, g2pw = object(), object()
    stock._chinese_bert, stock._g2pw = bert, g2pw
    stock._g2pw_present = lambda settings: True
    variant.stock, variant._injected = stock, True
    settings = GptSovitsEngine.settings_class(chinese_g2p="g2pw")
    assert variant.chinese_bert(SimpleNamespace(chinese_bert=None)) is bert
    assert variant.g2pw_for(settings) is g2pw
