"""Fine-tuning through the studio and the CLI, on a real dataset of the demo voice with piper-vc:
create and check a run, train it, resume, describe it, give it to a voice, speak with it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from voxmith.cli.main import cli
from voxmith.errors import VoxmithError

SENTENCE = "The river was calm at dawn."


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace with the demo voice and a dataset transcribed from its clips."""
    from voxmith.studio import Studio

    home = tmp_path_factory.mktemp("train") / "ws"
    studio = Studio(home, device="cpu")
    studio.import_demo_voice()
    studio.prepare_dataset("demo-ds", ["demo"])
    return home


def run_cli(home, *args, input=None):
    result = CliRunner().invoke(cli, ["--home", str(home), "-q", *args], input=input)
    return result


def test_init_explains_bad_settings_and_validate_reads_edits(workspace):
    result = run_cli(workspace, "train", "init", "bad", "--dataset", "demo-ds", "--engine", "piper-vc",
                     "--batch-size", "64")
    assert result.exit_code == 1 and "batch size 64 is larger than the" in result.output
    assert "Traceback" not in result.output
    result = run_cli(workspace, "train", "init", "x", "--dataset", "nope", "--engine", "piper-vc")
    assert result.exit_code == 1 and "No dataset named 'nope'" in result.output

    result = run_cli(workspace, "train", "init", "edits", "--dataset", "demo-ds", "--engine", "piper-vc")
    assert result.exit_code == 0, result.output
    config_path = workspace / "training" / "edits" / "config.yaml"
    assert "# peak learning rate" in config_path.read_text()
    assert run_cli(workspace, "train", "validate", "edits").exit_code == 0
    config_path.write_text(config_path.read_text().replace("batch_size:", "batch_size: 64 #"))
    result = run_cli(workspace, "train", "validate", "edits")
    assert result.exit_code == 1 and "batch size 64 is larger than the" in result.output
    result = run_cli(workspace, "train", "init", "edits", "--dataset", "demo-ds", "--engine", "piper-vc")
    assert result.exit_code == 1 and "already exists" in result.output


def test_train_resume_show_use_and_speak(workspace, tmp_path, monkeypatch):
    from voxmith.studio.training_runs import TrainingRuns

    def scanned(self):
        raise AssertionError("a piper-vc run read every speaker of the workspace (only speaker-encoder training needs them)")

    monkeypatch.setattr(TrainingRuns, "speakers", scanned)
    assert run_cli(workspace, "train", "init", "ft", "--dataset", "demo-ds", "--engine", "piper-vc",
                   "--epochs", "3").exit_code == 0
    result = run_cli(workspace, "train", "run", "ft")
    assert result.exit_code == 0, result.output
    assert "finished at step" in result.output and "started fresh" in result.output

    # A finished run resumes from its last checkpoint and has nothing left to do.
    again = run_cli(workspace, "train", "run", "ft")
    assert again.exit_code == 0 and "resumed from step" in again.output

    shown = json.loads(run_cli(workspace, "train", "show", "ft", "--json").output)
    assert shown["step"] == shown["total_steps"] > 0 and shown["latest"]["step"] == shown["step"]
    assert any(p.endswith("loss.png") for p in shown["plots"])
    assert (workspace / "training" / "ft" / "tensorboard").is_dir()
    assert "ft" in run_cli(workspace, "train", "list").output

    # "best" needs validation, which a dataset this small does not have: said in words.
    result = run_cli(workspace, "voices", "use", "demo", "--run", "ft", "--checkpoint", "best")
    assert result.exit_code == 1 and "no validated checkpoint" in result.output
    result = run_cli(workspace, "voices", "use", "demo", "--run", "ft", "--checkpoint", "9999")
    assert result.exit_code == 1 and "no checkpoint at step 9999" in result.output
    # The weights are checked on the voice first (Whisper on the guard's sentences, for real).
    result = run_cli(workspace, "voices", "use", "demo", "--run", "ft")
    assert result.exit_code == 0 and f"step {shown['step']}" in result.output
    assert f"Fine-tune check (step {shown['step']}):" in result.output, result.output
    assert "fine-tuned: run 'ft'" in run_cli(workspace, "voices", "list").output
    assert f"Fine-tune check (step {shown['step']}):" in run_cli(workspace, "voices", "show", "demo").output
    check = json.loads(run_cli(workspace, "voices", "show", "demo", "--json").output)["finetune"]["check"]
    assert check["words"] > 0 and check["errors"] <= check["base_errors"] + check["tolerance"]
    # The same weights again: the check is not run a second time.
    from voxmith.engines.piper_vc import PiperVCEngine

    def no_second_check(*args, **kwargs):
        raise AssertionError("the fine-tune check ran again for the same weights")
    monkeypatch.setattr(PiperVCEngine, "check_finetune", no_second_check)
    result = run_cli(workspace, "voices", "use", "demo", "--run", "ft")
    assert result.exit_code == 0 and "Fine-tune check" in result.output, result.output

    tuned_path, stock_path = tmp_path / "tuned.wav", tmp_path / "stock.wav"
    result = run_cli(workspace, "speak", SENTENCE, "--voice", "demo", "--seed", "3", "--no-rank",
                     "-o", str(tuned_path))
    assert result.exit_code == 0, result.output
    assert f"fine-tuned weights of run 'ft', step {shown['step']}" in result.output
    sidecar = json.loads(tuned_path.with_suffix(".json").read_text())
    assert sidecar["finetune"] == {"run": "ft", "checkpoint": "latest", "step": shown["step"]}
    takes = [take for sentence in sidecar["sentences"] for take in sentence["takes"]]
    assert takes and all(t["details"]["guard"]["checked"] == "fine-tuned weights" for t in takes)
    assert all(t["details"]["guard"]["strengths"] == check["strengths"] for t in takes)
    result = run_cli(workspace, "speak", SENTENCE, "--voice", "demo", "--seed", "3", "--no-rank", "--stock",
                     "-o", str(stock_path))
    assert result.exit_code == 0 and "with stock weights" in result.output
    tuned, stock = sf.read(tuned_path)[0], sf.read(stock_path)[0]
    assert tuned.shape != stock.shape or not np.allclose(tuned, stock, atol=1e-3)

    # A book reads with the same weights, checked as for speak (cached: not listened to again).
    book_text = tmp_path / "one.txt"
    book_text.write_text(SENTENCE + "\n")
    result = run_cli(workspace, "book", str(book_text), "--voice", "demo", "--seed", "3", "--no-rank",
                     "--format", "wav", "-o", str(tmp_path / "book"))
    assert result.exit_code == 0 and f"run 'ft', step {shown['step']}" in result.output, result.output
    manifest = json.loads((tmp_path / "book" / "manifest.json").read_text())
    assert manifest["finetune"]["step"] == shown["step"]
    assert manifest["sentences"][0]["details"]["guard"]["strengths"] == check["strengths"]
    first = np.load(tmp_path / "book" / "sentences" / "c01-s0001.npy")
    np.testing.assert_allclose(first[:tuned.size], tuned, atol=1e-4)  # the tuned speech, as speak made it

    # Reproducing uses the recorded step, whatever the voice uses now.
    run_cli(workspace, "voices", "use", "demo", "--stock")
    again_path = tmp_path / "again.wav"
    result = run_cli(workspace, "reproduce", str(tuned_path.with_suffix(".json")), "-o", str(again_path))
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(sf.read(again_path)[0], tuned, atol=1e-6)


def test_voice_whose_run_disappeared_gets_a_clear_error(workspace):
    from voxmith.studio import Studio
    from voxmith.studio.speech import SpeakRequest

    studio = Studio(workspace, device="cpu")
    studio.voices.get("demo").update_metadata(finetune={"run": "gone", "checkpoint": "latest",
                                                         "engine": "piper-vc"})
    try:
        with pytest.raises(VoxmithError, match="(?s)set to use training run 'gone'.*--stock"):
            studio.speak(SpeakRequest(text=SENTENCE, voice="demo", seed=1, rank=False,
                                      output=workspace / "x.wav"))
    finally:
        studio.voices.get("demo").update_metadata(finetune=None)


def test_loss_weights_are_the_engines_own_and_old_configs_still_load(workspace):
    """piper-vc declares one loss ("cepstral"): --loss-weight offers only it, naming it in errors;
    a config written before losses were declared (text_weight / mel_weight) validates and keeps
    its mel weight for the loss that was called mel."""
    result = run_cli(workspace, "train", "init", "w-bad", "--dataset", "demo-ds", "--engine", "piper-vc",
                     "--loss-weight", "text=1")
    assert result.exit_code == 1 and "piper-vc has no loss named text" in result.output
    assert "cepstral (default 1" in result.output and "Traceback" not in result.output
    result = run_cli(workspace, "train", "init", "w-old-flag", "--dataset", "demo-ds", "--engine", "piper-vc",
                     "--text-weight", "1")
    assert result.exit_code == 1 and "piper-vc has no loss named text" in result.output

    result = run_cli(workspace, "train", "init", "w-ok", "--dataset", "demo-ds", "--engine", "piper-vc",
                     "--loss-weight", "mel=2")  # its old name is still understood
    assert result.exit_code == 0, result.output
    text = (workspace / "training" / "w-ok" / "config.yaml").read_text()
    assert "  weights:\n    # error of the converted mel-cepstrum" in text and "    cepstral: 2.0" in text
    assert "text" not in text.split("losses:")[1].split("checkpoints:")[0]

    old = text.split("losses:")[0] + "losses:\n  text_weight: 0.5\n  mel_weight: 3.0\n" + \
        "checkpoints:" + text.split("checkpoints:")[1]
    (workspace / "training" / "w-ok" / "config.yaml").write_text(old)
    assert run_cli(workspace, "train", "validate", "w-ok").exit_code == 0
    from voxmith.studio import Studio
    from voxmith.training.losses import resolve

    studio = Studio(workspace, device="cpu")
    config = studio.training.open("w-ok").load_config()
    assert config.losses.weights == {"text": 0.5, "mel": 3.0} and config.losses.legacy_names == ("text", "mel")
    assert resolve(studio.training.loss_terms("piper-vc"), config.losses.weights,
                   config.losses.legacy_names) == {"cepstral": 3.0}

    listing = run_cli(workspace, "engines")
    assert "train init --loss-weight cepstral=VALUE (default 1)" in listing.output
    assert "train init --loss-weight text=VALUE (default 0.01)" in listing.output


class Listener:
    """Scripted listening for the guard: each rendering is remembered, and what is heard is the
    sentence with `garbled(strengths)` of its first words replaced."""

    def __init__(self, garbled):
        self.garbled, self.said = garbled, []

    def speak(self, text, seed, strengths):
        self.said.append((text, strengths))
        return np.full(4, len(self.said) - 1, np.float32)

    def transcribe(self, samples, sample_rate_hz):
        text, strengths = self.said[int(samples[0])]
        words = text.split()
        wrong = 0 if strengths is None else min(self.garbled(strengths), len(words))
        return " ".join(["blah"] * wrong + words[wrong:])


def test_finetune_check_backs_off_refuses_keeps_the_setting_and_runs_once(workspace, monkeypatch, tmp_path):
    """Putting piper-vc weights to use through the studio, with what Whisper hears scripted: a
    babbling network is backed off (and the takes say so), hopeless weights are refused and the
    voice keeps its setting, and each voice and weights are checked once (a refusal too)."""
    from voxmith.engines.piper_vc import guard
    from voxmith.studio import Studio
    from voxmith.studio.record import FinetuneChoice
    from voxmith.studio.speech import SpeakRequest

    studio = Studio(workspace, device="cpu")
    studio.training.init("ft-guard", "demo-ds", "piper-vc", epochs=2,
                         changes={"checkpoints": {"save_every_steps": 1, "keep_last": 10}})
    studio.training.train("ft-guard", handle_sigint=False)
    steps = [c.step for c in studio.training.open("ft-guard").checkpoints.list()]
    assert len(steps) >= 2, steps
    studio.conditioning("demo", studio.engine("piper-vc"))  # enrolled (for real) before listening is scripted
    verdict, checks = {}, []
    real_guard = guard.guard

    def scripted_guard(speak, start, **kwargs):
        listener = Listener(verdict["garbled"])
        checks.append(start)
        return real_guard(listener.speak, start, **{**kwargs, "transcribe": listener.transcribe, "base_errors": 0})
    monkeypatch.setattr(guard, "guard", scripted_guard)
    monkeypatch.setattr(guard, "floor", lambda *args, **kwargs: 0)
    voice = studio.voices.get("demo")
    voice.update_metadata(finetune=None)
    try:
        verdict["garbled"] = lambda s: 3 if s.network > 0 else 0  # the fine-tune's network babbles
        choice = studio.training.use("demo", "ft-guard", steps[0])
        assert [step.split()[0] for step in choice["check"]["reduced"]] == ["network", "network"]
        assert choice["check"]["strengths"]["network"] == 0.0 and choice["check"]["step"] == steps[0]
        kept = studio.voices.get("demo").metadata["finetune"]
        assert kept["run"] == "ft-guard" and kept["check"] == choice["check"] and len(checks) == 1
        assert studio.training.use("demo", "ft-guard", steps[0])["check"] == choice["check"]
        assert len(checks) == 1  # cached by the weights' digest

        verdict["garbled"] = lambda s: 3  # nothing helps
        with pytest.raises(VoxmithError, match=r"(?s)Voice 'demo' cannot speak with .*step %d.*word errors" % steps[-1]):
            studio.training.use("demo", "ft-guard", steps[-1])
        assert studio.voices.get("demo").metadata["finetune"] == kept and len(checks) == 2
        with pytest.raises(VoxmithError, match="would babble"):  # asked for explicitly: refused, not re-checked
            studio.speak(SpeakRequest(text=SENTENCE, voice="demo", seed=1, rank=False, output=tmp_path / "x.wav",
                                      finetune=FinetuneChoice.of_run("ft-guard", steps[-1])))
        assert len(checks) == 2 and not (tmp_path / "x.wav").exists()

        result = studio.speak(SpeakRequest(text=SENTENCE, voice="demo", seed=1, rank=False, candidates=1,
                                           output=tmp_path / "ok.wav"))  # the voice's setting: steps[0]
        sidecar = json.loads(result.sidecar_path.read_text())
        guards = [t["details"]["guard"] for s in sidecar["sentences"] for t in s["takes"]]
        assert guards and all(g["strengths"]["network"] == 0.0 and g["reduced"] == choice["check"]["reduced"]
                              for g in guards)
        assert len(checks) == 2
    finally:
        studio.voices.get("demo").update_metadata(finetune=None)
