"""Losses declared by the task, not named by the loop: weights, metrics columns, TensorBoard tags,
plots, staged names, old configs, and the shells' NAME=VALUE weights (tiny real model)."""

from __future__ import annotations

import pytest
import torch

from voxmith.errors import VoxmithError
from voxmith.training import TrainingRun, train_loop, validate
from voxmith.training.config import from_yaml, to_yaml
from voxmith.training.losses import LossTerm, parse_assignments, resolve, weight_problems
from tests.tiny_training import TinyModel, TinyTask, tiny_config

# Two stages' losses under one run config, as a task trained in stages declares them.
STAGED = (LossTerm("fit", 1.0, "squared error", stage="first"),
          LossTerm("size", 0.5, "mean absolute prediction", stage="second"))


class StagedModel(TinyModel):
    """The tiny regression, returning two losses under staged keys (or an undeclared one)."""

    keys = ("first.fit", "second.size")

    def forward(self, idx):
        pred = self.net(self.x[idx])
        return {self.keys[0]: torch.nn.functional.mse_loss(pred, self.y[idx]), self.keys[1]: pred.abs().mean()}


class StagedTask(TinyTask):
    losses = STAGED

    def __init__(self, keys=StagedModel.keys):
        super().__init__(dropout=0.0)
        staged = StagedModel(self.model.x, self.model.y, 0.0)
        staged.load_state_dict(self.model.state_dict())
        staged.keys = keys
        self.model = staged


def test_the_task_declares_its_losses_and_the_run_follows(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = tiny_config(epochs=2, save=3)
    config.losses.weights = {"first.fit": 1.0, "second.size": 0.0}  # the second one logged, not minimised
    run = TrainingRun.create(tmp_path / "training", "staged", config, STAGED)
    assert "    # squared error (default 1)\n    first.fit: 1.0" in run.config_path.read_text()
    train_loop(StagedTask(), run)

    assert run.metric_columns() == ["step", "epoch", "first.fit_loss", "second.size_loss", "total_loss",
                                    "val_loss", "lr"]
    rows = run.read_metrics()
    assert [r["total_loss"] for r in rows] == pytest.approx([r["first.fit_loss"] for r in rows])  # weight 0
    assert all(r["second.size_loss"] > 0 for r in rows)
    log = EventAccumulator(str(run.tensorboard_dir)).Reload()
    assert {"loss/first/fit", "loss/second/size", "loss/total", "learning_rate"} <= set(log.Tags()["scalars"])
    assert (run.folder / "loss.png").is_file()

    # The same task with a weight for a loss it does not have: refused before any step, naming its losses.
    config.losses.weights = {"first.fit": 1.0, "mel": 1.0}
    other = TrainingRun.create(tmp_path / "training", "unknown", config)
    with pytest.raises(VoxmithError, match=r"no loss named mel .*first\.fit \(default 1: squared error\)"):
        train_loop(StagedTask(), other)
    assert other.read_metrics() == []


def test_a_forward_returning_an_undeclared_loss_is_refused(tmp_path):
    run = TrainingRun.create(tmp_path / "training", "bad", tiny_config(epochs=1))
    with pytest.raises(VoxmithError, match=r"returned \['first.fit', 'mel'\]; its task declares the losses "
                                           r"first.fit, second.size"):
        train_loop(StagedTask(keys=("first.fit", "mel")), run)


def test_metrics_gain_a_column_when_the_losses_change(tmp_path):
    run = TrainingRun.create(tmp_path / "training", "cols", tiny_config())
    run.append_metrics({"step": 1, "epoch": 0.5, "text_loss": 2.0, "mel_loss": 1.0, "total_loss": 1.02,
                        "val_loss": None, "lr": 0.1})
    run.append_metrics({"step": 2, "epoch": 1.0, "mel_loss": 0.5, "cepstral_loss": 0.25, "total_loss": 0.25,
                        "val_loss": 0.3, "lr": 0.1})
    assert run.metric_columns() == ["step", "epoch", "text_loss", "mel_loss", "cepstral_loss", "total_loss",
                                    "val_loss", "lr"]
    first, second = run.read_metrics()
    assert first["text_loss"] == 2.0 and first["cepstral_loss"] != first["cepstral_loss"]  # NaN: not logged then
    assert second["cepstral_loss"] == 0.25 and second["val_loss"] == 0.3
    run.truncate_metrics(1)
    assert [r["step"] for r in run.read_metrics()] == [1] and "cepstral_loss" in run.metric_columns()


OLD_CONFIG = """
data:
  dataset: ds
  engine: piper-vc
losses:
  text_weight: 0.01
  mel_weight: 2.0
"""


def test_an_old_config_loads_and_keeps_its_weights():
    config = from_yaml(OLD_CONFIG)
    assert config.losses.weights == {"text": 0.01, "mel": 2.0}
    assert config.losses.legacy_names == ("text", "mel")
    cepstral = (LossTerm("cepstral", 1.0, "converted cepstrum", aliases=("mel",)),)
    # The old mel weight goes to the loss that was called mel; the old text weight, which this
    # engine never had, is ignored rather than refused.
    assert resolve(cepstral, config.losses.weights, config.losses.legacy_names) == {"cepstral": 2.0}
    assert validate(config, 40, 2, loss_terms=cepstral) == []
    # Written again, it is in the new form (and the internal mark is never written).
    again = from_yaml(to_yaml(config))
    assert "legacy_names" not in to_yaml(config) and again.losses.weights == {"text": 0.01, "mel": 2.0}
    assert again.losses.legacy_names == ()
    assert any("has no loss named text" in p for p in validate(again, 40, 2, loss_terms=cepstral))


def test_weights_in_words():
    terms = (LossTerm("text", 0.01, "text cross-entropy"), LossTerm("mel", 1.0, "code cross-entropy"))
    assert parse_assignments(["text=1", " mel = 0.5"], terms, "tortoise") == {"text": 1.0, "mel": 0.5}
    with pytest.raises(VoxmithError, match=r"tortoise has no loss named cepstral .*text \(default 0.01: text "
                                           r"cross-entropy\), mel \(default 1: code cross-entropy\)"):
        parse_assignments(["cepstral=1"], terms, "tortoise")
    with pytest.raises(VoxmithError, match="'mel' must be a number, not 'lots'"):
        parse_assignments(["mel=lots"], terms, "tortoise")
    with pytest.raises(VoxmithError, match="'mel' is not NAME=VALUE"):
        parse_assignments(["mel"], terms, "tortoise")
    assert weight_problems(terms, {"text": 0.0, "mel": 0.0}) == ["every loss weight is 0, so nothing would be learned."]
    assert weight_problems(terms, {"mel": -1.0}) == ["loss weight(s) mel must be 0 or more."]
    aliased = (LossTerm("cepstral", 1.0, "cepstrum", aliases=("mel",)),)
    assert parse_assignments(["mel=2"], aliased, "piper-vc") == {"cepstral": 2.0}  # stored under its name now
