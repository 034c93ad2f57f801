"""Ordinary mistakes and small promises of the CLI, each checked the way a user meets it.

Heavy work (enrolling, training) is replaced by stand-ins where only the CLI's own logic is tested.
"""

from __future__ import annotations

import inspect
import re
import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from voxmith.cli.main import cli


@pytest.fixture
def run(tmp_path):
    home = tmp_path / "home"

    def invoke(*args, input=None):
        return CliRunner().invoke(cli, ["--home", str(home), "-q", *args], input=input)

    invoke.home = home
    return invoke


# --- train -------------------------------------------------------------------------------------

def test_train_init_defaults_to_piper_vc(run, monkeypatch):
    from voxmith.engines.registry import DEFAULT_ENGINE
    from voxmith.errors import VoxmithError
    from voxmith.studio.training_runs import TrainingRuns

    assert DEFAULT_ENGINE == "piper-vc"
    assert inspect.signature(TrainingRuns.init).parameters["engine"].default == DEFAULT_ENGINE
    seen = {}

    def fake_init(self, name, dataset, engine, *args, **kwargs):
        seen["engine"] = engine
        raise VoxmithError("stop here")

    monkeypatch.setattr(TrainingRuns, "init", fake_init)
    result = run("train", "init", "r", "--dataset", "d")
    assert result.exit_code == 1 and seen == {"engine": "piper-vc"}


def test_lr_help_states_each_engines_default():
    from voxmith.cli.commands_train import LR_HELP
    from voxmith.engines import engine_class
    from voxmith.training.config import ScheduleConfig

    stated = dict((engine, float(value)) for value, engine in re.findall(r"([0-9.e-]+) for ([a-z-]+)", LR_HELP))
    for engine in ("piper-vc", "tortoise"):
        actual = engine_class(engine).training_defaults.get("schedule", {}).get(
            "learning_rate", ScheduleConfig().learning_rate)
        assert stated[engine] == actual, engine


def test_interrupted_train_run_exits_130(run, monkeypatch):
    from voxmith.studio.training_runs import TrainingRuns
    from voxmith.training import TrainingResult

    monkeypatch.setattr(TrainingRuns, "train", lambda self, name, **kw: TrainingResult(4, "interrupted", None, None))
    result = run("train", "run", "my run")
    assert result.exit_code == 130, result.output
    assert "interrupted at step 4" in result.output
    assert "Resume with: voxmith train run 'my run'" in result.output
    monkeypatch.setattr(TrainingRuns, "train", lambda self, name, **kw: TrainingResult(9, "quit", None, 4))
    assert run("train", "run", "r").exit_code == 0  # a "quit" typed by the user is no interruption


# --- demo --------------------------------------------------------------------------------------

def test_demo_time_includes_preparing_the_voice(run, monkeypatch, tmp_path):
    """The sidecar times synthesis only; the demo's figure must include the enrollment before it."""
    from voxmith.cli import commands_misc
    from voxmith.studio import Studio

    monkeypatch.setattr(Studio, "import_demo_voice",
                        lambda self, progress=None: SimpleNamespace(name="demo", path=tmp_path))
    monkeypatch.setattr(Studio, "analyse_voice", lambda self, name, progress=None: None)
    monkeypatch.setattr(commands_misc, "format_report", lambda report: "(report)")

    def slow_speak(self, request, progress=None):
        time.sleep(0.6)  # "enrolling"
        return SimpleNamespace(duration_s=2.0, path=tmp_path / "x.wav", sidecar={"timing": {"total_s": 0.1}})

    monkeypatch.setattr(Studio, "speak", slow_speak)
    result = run("demo")
    assert result.exit_code == 0, result.output
    reported = float(re.search(r"Spoke 2\.0 s in ([0-9.]+) s", result.output).group(1))
    assert reported >= 0.6
    assert "preparing the voice, then 0.1 s speaking" in result.output


# --- quoting -----------------------------------------------------------------------------------

def test_suggested_commands_quote_names_with_spaces(run):
    result = run("voices", "show", "my voice")
    assert result.exit_code == 1 and "voxmith voices add 'my voice' CLIP..." in result.output
    result = run("train", "run", "my run")
    assert result.exit_code == 1 and "voxmith train init 'my run' --dataset NAME" in result.output
    result = run("dataset", "show", "my data")
    assert result.exit_code == 1 and "voxmith dataset prepare 'my data' --from" in result.output
