"""GPT-SoVITS fine-tuning through the CLI with tiny random-weight models on the demo voice's dataset:
train init / train run (SoVITS then GPT), voices use, speak with the fine-tuned weights, reproduce."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from voxmith.cli.main import cli
from voxmith.engines.gpt_sovits.engine import GptSovitsEngine, GptSovitsModels


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyTrainableGptSovits(GptSovitsEngine):
    """Tiny random-weight models whose SoVITS keeps its posterior encoder (what training needs)."""

    name = "gpt-sovits-tiny-train"

    def __init__(self, device: str = "cpu", models_dir=None):
        from tests.test_gpt_sovits_engine import tiny_models
        from tests.test_gpt_sovits_finetune import tiny_generator

        super().__init__(device, models_dir)
        base = tiny_models(3)
        self._models["v2"] = GptSovitsModels("v2", base.t2s, tiny_generator(7).eval(), base.hubert, 30)
        self._injected = True

    def _training_discriminator(self, version):
        from tests.test_gpt_sovits_finetune import TinyDiscriminator

        return TinyDiscriminator()  # the full-size one costs seconds per pass on a CPU


@pytest.fixture
def workspace(tmp_path):
    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine
    from voxmith.studio import Studio

    register_engine(TinyTrainableGptSovits.name, TinyTrainableGptSovits)
    try:
        home = tmp_path / "ws"
        studio = Studio(home, device="cpu")
        studio.import_demo_voice()
        studio.prepare_dataset("demo-ds", ["demo"])
        yield home
    finally:
        unregister_engine(TinyTrainableGptSovits.name)


def run_cli(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


def test_train_two_stages_use_and_speak(workspace, tmp_path):
    engine = TinyTrainableGptSovits.name
    result = run_cli(workspace, "train", "init", "ft", "--dataset", "demo-ds", "--engine", engine, "--epochs", "2")
    assert result.exit_code == 0, result.output
    result = run_cli(workspace, "train", "run", "ft")
    assert result.exit_code == 0, result.output
    metrics = (workspace / "training" / "ft" / "metrics.csv").read_text()
    assert "sovits.mel_loss" in metrics.splitlines()[0] and "gpt.ce_loss" in metrics.splitlines()[0]
    assert list((workspace / "datasets" / "demo-ds").rglob("gpt-sovits-ft*/*/*.npz"))  # features cached
    assert run_cli(workspace, "voices", "use", "demo", "--run", "ft").exit_code == 0
    tuned = tmp_path / "tuned.wav"
    result = run_cli(workspace, "speak", "Hello there.", "-e", engine, "--voice", "demo", "--seed", "3",
                     "--no-rank", "-o", str(tuned))
    assert result.exit_code == 0, result.output
    stock = tmp_path / "stock.wav"
    result = run_cli(workspace, "speak", "Hello there.", "-e", engine, "--voice", "demo", "--seed", "3",
                     "--no-rank", "--stock", "-o", str(stock))
    assert result.exit_code == 0, result.output
    assert not np.array_equal(sf.read(tuned)[0], sf.read(stock)[0])
    assert json.loads(tuned.with_suffix(".json").read_text())["finetune"]["run"] == "ft"
    again = tmp_path / "again.wav"
    result = run_cli(workspace, "reproduce", str(tuned.with_suffix(".json")), "-o", str(again))
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(sf.read(again)[0], sf.read(tuned)[0])


class TinyTrainableGptSovitsPro(TinyTrainableGptSovits):
    """The same at v2ProPlus: a tiny pro SoVITS and a toy speaker-verification model."""

    name = "gpt-sovits-tiny-train-pro"

    def __init__(self, device: str = "cpu", models_dir=None):
        from tests.test_gpt_sovits_engine import tiny_models
        from tests.test_gpt_sovits_finetune import tiny_pro_generator, tiny_speaker_verifier

        GptSovitsEngine.__init__(self, device, models_dir)
        base = tiny_models(3)
        self._models["v2ProPlus"] = GptSovitsModels("v2ProPlus", base.t2s, tiny_pro_generator(7).eval(), base.hubert,
                                                    30, tiny_speaker_verifier(1))
        self._injected = True


def test_v2proplus_train_use_and_speak(tmp_path):
    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine
    from voxmith.studio import Studio

    engine = TinyTrainableGptSovitsPro.name
    register_engine(engine, TinyTrainableGptSovitsPro)
    try:
        home = tmp_path / "ws"
        Studio(home, device="cpu").import_demo_voice()
        Studio(home, device="cpu").prepare_dataset("demo-ds", ["demo"])
        result = run_cli(home, "train", "init", "bad", "--dataset", "demo-ds", "--engine", engine,
                         "--set", "model_version=v4")
        assert result.exit_code != 0 and "does not fine-tune GPT-SoVITS v4" in result.output
        result = run_cli(home, "train", "init", "pro", "--dataset", "demo-ds", "--engine", engine, "--epochs", "2",
                         "--set", "model_version=v2ProPlus")
        assert result.exit_code == 0 and "model_version=v2ProPlus" in result.output, result.output
        result = run_cli(home, "train", "run", "pro")
        assert result.exit_code == 0, result.output
        assert run_cli(home, "voices", "use", "demo", "--run", "pro").exit_code == 0
        tuned, stock = tmp_path / "tuned.wav", tmp_path / "stock.wav"
        result = run_cli(home, "speak", "Hello there.", "-e", engine, "--voice", "demo", "--seed", "3", "--no-rank",
                         "-o", str(tuned))
        assert result.exit_code == 0, result.output
        assert json.loads(tuned.with_suffix(".json").read_text())["settings"]["model_version"] == "v2ProPlus"
        result = run_cli(home, "speak", "Hello there.", "-e", engine, "--voice", "demo", "--seed", "3", "--no-rank",
                         "--stock", "--set", "model_version=v2ProPlus", "-o", str(stock))
        assert result.exit_code == 0, result.output
        assert not np.array_equal(sf.read(tuned)[0], sf.read(stock)[0])
    finally:
        unregister_engine(engine)
