"""sv2tts training through the CLI with tiny random-weight models on the demo voice's real clips:
train init --set stage=..., train run (the synthesizer, resumed; then the vocoder on synthesizer-
aligned mels), voices use, speak with the fine-tuned weights; bad --set values refused clearly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from voxmith.cli.main import cli
from voxmith.engines.sv2tts.bundle import SV2TTSModels
from voxmith.engines.sv2tts.engine import SV2TTSEngine

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SPEAK = ["--set", "max_seconds=1.5", "--set", "target_samples=200", "--set", "overlap_samples=20"]


class TinyTrainableSV2TTS(SV2TTSEngine):
    name = "sv2tts-tiny-train"

    def __init__(self, device: str = "cpu", models_dir=None):
        super().__init__(device, models_dir)
        self._models = SV2TTSModels.tiny(seed=5)


@pytest.fixture
def workspace(tmp_path):
    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine
    from voxmith.studio import Studio

    register_engine(TinyTrainableSV2TTS.name, TinyTrainableSV2TTS)
    try:
        home = tmp_path / "ws"
        studio = Studio(home, device="cpu")
        studio.import_demo_voice()
        studio.prepare_dataset("demo-ds", ["demo"])
        yield home
    finally:
        unregister_engine(TinyTrainableSV2TTS.name)


def run_cli(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), "-q", *args])


def speak(home, out, *extra):
    result = run_cli(home, "speak", "Hello there.", "-e", TinyTrainableSV2TTS.name, "--voice", "demo", "--seed", "3",
                     "--no-rank", *SPEAK, *extra, "-o", str(out))
    assert result.exit_code == 0, result.output
    return sf.read(out)[0]


def test_synthesizer_then_vocoder_runs_resume_and_speak(workspace, tmp_path):
    from voxmith.studio import Studio
    from voxmith.training import TrainingRun

    engine = TinyTrainableSV2TTS.name
    result = run_cli(workspace, "train", "init", "syn", "--dataset", "demo-ds", "--engine", engine, "--epochs", "1",
                     "--set", "stage=synthesizer", "--set", "tts_schedule=[(2, 1e-3, 100, 12)]")
    assert result.exit_code == 0, result.output
    assert "stage=synthesizer" in result.output
    result = run_cli(workspace, "train", "run", "syn")
    assert result.exit_code == 0 and "started fresh" in result.output, result.output
    run = TrainingRun(workspace / "training" / "syn")
    header = run.metric_columns()
    assert "synthesizer.postnet_mel_loss" in header and "synthesizer.stop_loss" in header
    first_steps = len(run.read_metrics())
    cached = list((workspace / "datasets" / "demo-ds").rglob("sv2tts-lines/*.npz"))
    assert cached  # mels and embeddings computed once per line
    config = run.load_config()
    config.schedule.epochs = 2
    run.save_config(config)
    result = run_cli(workspace, "train", "run", "syn")
    assert result.exit_code == 0 and f"resumed from step {first_steps}" in result.output, result.output
    assert len(run.read_metrics()) == 2 * first_steps
    assert sorted((workspace / "datasets" / "demo-ds").rglob("sv2tts-lines/*.npz")) == sorted(cached)

    result = run_cli(workspace, "train", "init", "voc", "--dataset", "demo-ds", "--engine", engine, "--epochs", "1",
                     "--set", "stage=vocoder", "--set", "voc_seq_len=30")
    assert result.exit_code == 0, result.output
    result = run_cli(workspace, "train", "run", "voc")
    assert result.exit_code == 0, result.output
    assert "vocoder.ce_loss" in TrainingRun(workspace / "training" / "voc").metric_columns()
    gta = list((workspace / "datasets" / "demo-ds").rglob("sv2tts-gta/*.npz"))
    assert gta  # GTA mels cached
    # A vocoder on the mels of the fine-tuned synthesizer run: its checkpoints carry that synthesizer.
    result = run_cli(workspace, "train", "init", "pair", "--dataset", "demo-ds", "--engine", engine, "--epochs", "1",
                     "--set", "stage=vocoder", "--set", "voc_seq_len=30", "--set", "synthesizer_run=syn")
    assert result.exit_code == 0, result.output
    result = run_cli(workspace, "train", "run", "pair")
    assert result.exit_code == 0, result.output
    assert len(list((workspace / "datasets" / "demo-ds").rglob("sv2tts-gta/*.npz"))) > len(gta)

    # The tiny random models' speech is mostly trimmed silence, so the weights are compared: the
    # engine a voice speaks with holds the run's model, the other models stay stock.
    studio = Studio(workspace, device="cpu")
    stock_engine = TinyTrainableSV2TTS()
    stock = speak(workspace, tmp_path / "stock.wav")
    synthesizer_of_syn = studio.training.finetune("syn")[0].load_state()
    for run_name, trained in (("syn", {"synthesizer"}), ("voc", {"vocoder"}), ("pair", {"synthesizer", "vocoder"})):
        assert run_cli(workspace, "voices", "use", "demo", "--run", run_name).exit_code == 0
        speak(workspace, tmp_path / f"{run_name}.wav")
        assert json.loads((tmp_path / f"{run_name}.json").read_text())["finetune"]["run"] == run_name
        finetune, _, _ = studio.training.finetune(run_name)
        tuned = stock_engine.with_finetune(finetune).models()
        state = finetune.load_state()
        for model in ("synthesizer", "vocoder"):
            if model in trained:
                for key, value in getattr(tuned, model).state_dict().items():
                    assert torch.equal(value, state[f"{model}.{key}"]), key
                assert not _same(getattr(tuned, model), getattr(stock_engine.models(), model))
            else:
                assert getattr(tuned, model) is getattr(stock_engine.models(), model)
        assert np.array_equal(speak(workspace, tmp_path / f"{run_name}-stock.wav", "--stock"), stock)
    pair = studio.training.finetune("pair")[0].load_state()
    assert all(torch.equal(pair[k], v) for k, v in synthesizer_of_syn.items() if k.startswith("synthesizer."))


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_bad_engine_settings_are_refused_before_anything_starts(workspace):
    engine = TinyTrainableSV2TTS.name
    result = run_cli(workspace, "train", "init", "x", "--dataset", "demo-ds", "--engine", engine, "--set", "voc_lr=1")
    assert result.exit_code != 0 and "--lr" in result.output and "Traceback" not in result.output
    result = run_cli(workspace, "train", "init", "x", "--dataset", "demo-ds", "--engine", engine, "--set", "stage")
    assert result.exit_code != 0 and "NAME=VALUE" in result.output
    result = run_cli(workspace, "train", "init", "x", "--dataset", "demo-ds", "--set", "stage=vocoder")
    assert result.exit_code != 0 and "no training settings of its own" in result.output
    assert not (workspace / "training" / "x").exists()


def test_encoder_run_on_the_workspace_speakers_and_a_voice_speaking_with_it(workspace, tmp_path):
    """The speaker-encoder stage trains on every speaker of the workspace (here the demo voice and
    the demo dataset, two names), and a voice using the run is embedded by the trained encoder."""
    from voxmith.studio import Studio
    from voxmith.training import TrainingRun

    engine = TinyTrainableSV2TTS.name
    result = run_cli(workspace, "train", "init", "enc", "--dataset", "demo-ds", "--engine", engine, "--epochs", "2",
                     "--set", "stage=encoder", "--set", "umap_every=0")
    assert result.exit_code == 0, result.output
    config = TrainingRun(workspace / "training" / "enc").load_config()
    assert (config.schedule.learning_rate, config.schedule.max_grad_norm) == (1e-4, 3.0)  # official Adam 1e-4, clip 3
    result = run_cli(workspace, "train", "run", "enc")
    assert result.exit_code == 0, result.output
    run = TrainingRun(workspace / "training" / "enc")
    assert {"encoder.ge2e_loss", "eer"} <= set(run.metric_columns())
    studio = Studio(workspace, device="cpu")
    summary = studio.training.summary("enc")  # steps counted from speakers x utterances, not the dataset's lines
    assert summary.step == summary.total_steps > 0
    finetune, _, _ = studio.training.finetune("enc")
    stock_engine = TinyTrainableSV2TTS()
    tuned_engine = stock_engine.with_finetune(finetune)
    tuned = tuned_engine.models()
    assert tuned.encoder is not stock_engine.models().encoder and tuned.synthesizer is stock_engine.models().synthesizer
    assert not _same(tuned.encoder, stock_engine.models().encoder)
    assert tuned_engine.cache_key() != stock_engine.cache_key()  # the voice is embedded again by the trained encoder
    assert run_cli(workspace, "voices", "use", "demo", "--run", "enc").exit_code == 0
    speak(workspace, tmp_path / "enc.wav")


def test_encoder_run_refuses_a_workspace_with_one_speaker(workspace):
    from voxmith.studio import Studio

    engine = TinyTrainableSV2TTS.name
    Studio(workspace, device="cpu").voices.remove("demo")  # the demo dataset is left: one speaker
    result = run_cli(workspace, "train", "init", "enc", "--dataset", "demo-ds", "--engine", engine, "--epochs", "1",
                     "--set", "stage=encoder")
    assert result.exit_code == 0, result.output
    result = run_cli(workspace, "train", "run", "enc")
    assert result.exit_code != 0 and "at least 2 speakers" in result.output and "Traceback" not in result.output
