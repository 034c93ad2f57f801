"""GPT-SoVITS fine-tuning on Chinese transcripts: each Chinese line's BERT features computed once with
the dataset's other features (a tiny random RoBERTa stand-in of the real feature width), cached and
recomputed when what reads Chinese changes, and batched for the GPT stage as the official s1 loader
batches them (gpt_batch.pt, make_gpt_batch_fixtures.py); then a whole run on a Chinese dataset
through the CLI, resumed."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_gpt_sovits_chinese import bert_1024, needs_zh, tiny_g2pw
from tests.test_gpt_sovits_train_cli import TinyTrainableGptSovits, run_cli
from tests.test_gpt_sovits_weights import clean_env  # noqa: F401  (pytest fixture)
from voxmith.engines.base import FinetuneSpec, TrainingLine
from voxmith.engines.gpt_sovits import frontend, training_data
from voxmith.engines.gpt_sovits.finetune import gpt_collate
from voxmith.errors import VoxmithError

FIXTURES = Path(__file__).parent / "fixtures" / "gpt_sovits"
CHINESE = "\u4eca\u5929\u5929\u6c14\u5f88\u597d\uff0c\u6211\u4eec\u4e00\u8d77\u53bb\u516c\u56ed\u6563\u6b65\u5427\u3002"
MIXED = "\u6211\u4eec\u7528Python\u8bf4\u4f60\u597d\uff0c\u4e16\u754c\uff01"
ENGLISH = "Printing, in the only sense."

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_gpt_batch_places_bert_features_as_the_official_loader():
    golden = torch.load(FIXTURES / "gpt_batch.pt")
    lines = [types.SimpleNamespace(phone_ids=line["phone_ids"].numpy(), codes=line["codes"].numpy(),
                                   bert=None if line["bert"] is None else line["bert"].numpy())
             for line in golden["lines"]]
    ours, official = gpt_collate(lines), golden["batch"]
    assert torch.equal(ours["phones"], official["phoneme_ids"])
    assert torch.equal(ours["phone_lengths"], official["phoneme_ids_len"])
    assert torch.equal(ours["bert"], official["bert_feature"])  # zeros: the line without features, the padding
    assert torch.equal(ours["code_lengths"], official["semantic_ids_len"])
    for row, length in enumerate(official["semantic_ids_len"].tolist()):  # padding: 0 here, 1024 there (unread)
        assert torch.equal(ours["codes"][row, :length], official["semantic_ids"][row, :length])
    lines[0].bert = lines[0].bert[:, :3]
    with pytest.raises(VoxmithError, match="feature cache"):
        gpt_collate(lines)


@pytest.fixture(scope="module")
def models():
    from tests.test_gpt_sovits_engine import tiny_models

    return tiny_models(3)


@pytest.fixture
def lines(demo_files, tmp_path):
    import soundfile as sf

    from voxmith.audio import load_audio

    out = []
    for i, text in enumerate((CHINESE, MIXED, ENGLISH)):  # 1.6 s stretches of the demo clips
        audio = load_audio(demo_files[i % 2])
        clip = tmp_path / f"line{i}.wav"
        start = int((i // 2) * 1.6 * audio.sample_rate_hz)
        sf.write(clip, audio.samples[start:start + int(1.6 * audio.sample_rate_hz)], audio.sample_rate_hz)
        out.append(TrainingLine(clip, text))
    return out


@needs_zh
def test_chinese_lines_carry_their_bert_features_into_the_gpt_batch(models, lines, tmp_path, monkeypatch):
    bert = bert_1024()
    loads = []
    reader = lambda: loads.append(1) or training_data.ChineseReader(bert)  # noqa: E731
    got = training_data.load_lines(lines, tmp_path / "cache", models.hubert, models.sovits, chinese=reader)
    assert loads == [1]
    chinese, mixed, english = got
    reading = frontend.read_text(CHINESE, "zh")
    assert chinese.language == "zh" and chinese.phone_ids.tolist() == list(reading.phone_ids)
    # one run of Chinese: its RoBERTa features, one per character repeated over its phones
    expected = bert.phone_features(reading.runs[0].normalized, reading.runs[0].word2ph)
    np.testing.assert_array_equal(chinese.bert, expected)
    # mixed: features over the Chinese runs, zeros over the English one (as synthesis reads it)
    runs = frontend.read_text(MIXED, "zh").runs
    assert [run.language for run in runs] == ["zh", "en", "zh"]
    assert mixed.bert.shape == (1024, mixed.phone_ids.shape[0])
    english_phones = slice(runs[0].phone_count, runs[0].phone_count + runs[1].phone_count)
    assert not mixed.bert[:, english_phones].any() and np.abs(mixed.bert[:, :runs[0].phone_count]).min() > 0
    assert english.language == "en" and english.bert is None
    batch = gpt_collate(got)
    assert batch["bert"].shape == (3, 1024, batch["phones"].shape[1])
    for row, line in enumerate(got):
        n = line.phone_ids.shape[0]
        want = np.zeros((1024, n), np.float32) if line.bert is None else line.bert
        np.testing.assert_array_equal(batch["bert"][row, :, :n].numpy(), want)
        assert not batch["bert"][row, :, n:].any()
    # cached: nothing recomputed; a Chinese transcript without a reader is refused in words
    computed = []
    real = training_data.compute_line
    monkeypatch.setattr(training_data, "compute_line", lambda line, *more: computed.append(line) or real(line, *more))
    training_data.load_lines(lines, tmp_path / "cache", models.hubert, models.sovits, chinese=reader)
    assert computed == []
    with pytest.raises(VoxmithError, match="Chinese BERT"):
        training_data.load_lines(lines, tmp_path / "cache", models.hubert, models.sovits)
    # other RoBERTa weights: the Chinese lines (only) are computed again
    again = training_data.load_lines(lines, tmp_path / "cache", models.hubert, models.sovits,
                                     chinese=lambda: training_data.ChineseReader(bert_1024(seed=1)))
    assert [line.text for line in computed] == [CHINESE, MIXED]
    assert not np.array_equal(again[0].bert, chinese.bert) and np.array_equal(again[2].hubert, english.hubert)
    # G2PW instead of pypinyin reads the polyphones: another key, so those lines are read again
    assert training_data.ChineseReader(bert, tiny_g2pw()).key() != training_data.ChineseReader(bert).key()
    assert training_data.ChineseReader(bert).key() == training_data.ChineseReader(bert).key()


@needs_zh
def test_a_missing_roberta_is_refused_with_the_download_command(demo_files, tmp_path, clean_env):  # noqa: F811
    from tests.test_gpt_sovits_engine import tiny_models
    from tests.test_gpt_sovits_finetune import TinyDiscriminator, short_clips, tiny_generator
    from voxmith.engines.gpt_sovits.engine import GptSovitsEngine, GptSovitsModels

    base = tiny_models(3)
    engine = GptSovitsEngine("cpu", models_dir=tmp_path / "models")
    engine._models["v2"] = GptSovitsModels("v2", base.t2s, tiny_generator(7).eval(), base.hubert, 30)
    engine._training_discriminator = lambda version: TinyDiscriminator()
    clip = short_clips(demo_files, tmp_path)[0].audio_path
    spec = FinetuneSpec(train=(TrainingLine(clip, CHINESE),), validation=(), batch_size=1, seed=0,
                        cache_dir=tmp_path / "cache", epochs=2)
    with pytest.raises(VoxmithError, match="models download gpt-sovits --only chinese-roberta"):
        engine.training_task(spec)
    # an English dataset never asks for it
    english = FinetuneSpec(train=(TrainingLine(clip, ENGLISH),), validation=(), batch_size=1, seed=0,
                           cache_dir=tmp_path / "cache", epochs=2)
    assert engine.training_task(english).lines[0].bert is None


class TinyTrainableChineseGptSovits(TinyTrainableGptSovits):
    """The tiny trainable engine with a tiny RoBERTa of the real feature width."""

    name = "gpt-sovits-tiny-train-zh"

    def __init__(self, device: str = "cpu", models_dir=None):
        super().__init__(device, models_dir)
        self._models["v2"].chinese_bert = bert_1024()


@needs_zh
def test_a_chinese_dataset_fine_tunes_resumes_and_speaks(tmp_path):
    from voxmith.datasets import Dataset
    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine
    from voxmith.studio import Studio
    from voxmith.training import TrainingRun

    engine = TinyTrainableChineseGptSovits.name
    register_engine(engine, TinyTrainableChineseGptSovits)
    try:
        home = tmp_path / "ws"
        Studio(home, device="cpu").import_demo_voice()
        Studio(home, device="cpu").prepare_dataset("zh-ds", ["demo"])
        dataset = home / "datasets" / "zh-ds"
        texts = [CHINESE, MIXED, "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u8fd9\u4e2a\u82f9\u679c\u4e09\u5757\u4e94\u3002"]
        data = Dataset("zh-ds", dataset)
        record = data.load()
        for n, segment in enumerate(record["segments"]):  # the demo clips, with Chinese transcripts
            segment["transcript"] = texts[n % len(texts)]
        data.save(record)  # segments.json and train.txt / validation.txt
        n = sum(1 for name in ("train.txt", "validation.txt") for _ in (dataset / name).read_text().splitlines())
        assert CHINESE in (dataset / "train.txt").read_text(encoding="utf-8")
        result = run_cli(home, "train", "init", "zh", "--dataset", "zh-ds", "--engine", engine, "--epochs", "2")
        assert result.exit_code == 0, result.output
        result = run_cli(home, "train", "run", "zh")
        assert result.exit_code == 0 and "started fresh" in result.output, result.output
        run = TrainingRun(home / "training" / "zh")
        assert "gpt.ce_loss" in run.metric_columns()
        first_steps = len(run.read_metrics())
        cached = sorted(dataset.rglob("gpt-sovits-ft*/*/*-zh*.npz"))
        assert len(cached) == n  # every line Chinese, each with its features
        assert all("bert" in np.load(path).files for path in cached)
        config = run.load_config()
        config.schedule.epochs = 3  # one more GPT epoch
        run.save_config(config)
        result = run_cli(home, "train", "run", "zh")
        assert result.exit_code == 0 and f"resumed from step {first_steps}" in result.output, result.output
        assert len(run.read_metrics()) > first_steps
        assert sorted(dataset.rglob("gpt-sovits-ft*/*/*.npz")) == cached  # nothing computed again
        assert run_cli(home, "voices", "use", "demo", "--run", "zh").exit_code == 0
        out = tmp_path / "tuned.wav"
        result = run_cli(home, "speak", "\u4f60\u597d\uff0c\u4e16\u754c\u3002", "-e", engine, "--voice", "demo",
                         "--set", "language=zh", "--seed", "3", "--no-rank", "-o", str(out))
        assert result.exit_code == 0, result.output
    finally:
        unregister_engine(engine)
