"""piper-vc fine-tuning on a tiny real dataset: the demo clips (LJ Speech) cut at pauses and
transcribed by Whisper, trained through the engine-independent loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from voxmith.datasets import PrepareSettings, prepare_dataset
from voxmith.datasets.store import Dataset
from voxmith.engines import Finetune, FinetuneSpec, TrainingLine
from voxmith.engines.piper_vc import PiperVCEngine
from voxmith.engines.piper_vc import training as vc_training
from voxmith.errors import VoxmithError
from voxmith.training import TrainingRun, defaults_for, train_loop

TEXT = "The small boat drifted slowly towards the harbour."


@pytest.fixture(scope="module")
def dataset_lines(tmp_path_factory, demo_files):
    """(train, validation) lines: the two demo clips cut into 2-5 s segments with transcripts;
    the last segment is held out (the dataset's own split needs 10 segments)."""
    folder = tmp_path_factory.mktemp("ds") / "demo"
    dataset = Dataset("demo", folder)
    prepare_dataset(dataset, demo_files, PrepareSettings(min_seconds=2.0, max_seconds=5.0))
    lines = [TrainingLine(folder / s["file"], s["transcript"]) for s in dataset.load()["segments"]
             if s.get("split") in ("train", "validation")]
    assert len(lines) >= 4, lines
    return tuple(lines[:-1]), tuple(lines[-1:])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def engine() -> PiperVCEngine:
    return PiperVCEngine(device="cpu")


def spec_for(lines, cache_dir, seed=0) -> FinetuneSpec:
    train, validation = lines
    return FinetuneSpec(train=train, validation=validation, batch_size=2, seed=seed, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, engine, dataset_lines, cache_dir):
    """A task trained for a few dozen steps through train_loop, and its run."""
    events = []
    task = engine.training_task(spec_for(dataset_lines, cache_dir), progress=events.append)
    stages = {e.stage for e in events}
    assert {"analysing lines", "choosing warp", "aligning lines"} <= stages, stages
    initial_state = {k: v.clone() for k, v in task.model.state_dict().items()}
    initial_val = task.validation_loss()
    config = defaults_for(len(dataset_lines[0]), epochs=12, dataset="demo", engine="piper-vc")
    config.schedule.learning_rate = 2e-3
    config.schedule.grad_accumulation = 1
    config.schedule.scheduler = "cosine"
    config.checkpoints.validate_every_steps = 4
    run = TrainingRun.create(tmp_path_factory.mktemp("training"), "demo-ft", config)
    result = train_loop(task, run, config=config, handle_sigint=False)
    return task, run, result, initial_state, initial_val


def as_finetune(state, key) -> Finetune:
    return Finetune(key=key, description=f"test {key}", load_state=lambda: state)


def speak(engine, cond, seed=3):
    return engine.synthesize(TEXT, cond, engine.settings_class(), seed=seed)[0].samples


def base_conditioning(task) -> dict:
    """A voice conditioning whose conversion is the task's base (what enrollment would give)."""
    cond = task.model.base.params().to_arrays(prefix="conv.")
    cond["rate"] = np.asarray(1.0)
    return cond


def test_loss_decreases_through_the_training_loop(trained, dataset_lines):
    task, run, result, _, initial_val = trained
    assert result.stopped == "finished" and result.step >= 24
    rows = run.read_metrics()
    losses = [r["mel_loss"] for r in rows]
    # Two epochs at each end (the same lines), so batch composition does not enter the comparison.
    per_epoch = len(task.batches(0))
    first, last = np.mean(losses[:2 * per_epoch]), np.mean(losses[-2 * per_epoch:])
    assert last < 0.9 * first, losses
    vals = [r["val_loss"] for r in rows if r["val_loss"] == r["val_loss"]]
    assert vals and min(vals) < initial_val, (initial_val, vals)
    assert not task.validation_is_training  # the dataset had validation lines


def test_batches_are_seeded_per_epoch_and_cover_every_line(trained, dataset_lines):
    task = trained[0]
    a, b, c = task.batches(0), task.batches(0), task.batches(1)
    assert all(torch.equal(x["inputs"], y["inputs"]) for x, y in zip(a, b))
    frames = lambda bs: sorted(int(row.sum()) for batch in bs for row in batch["speech"])  # noqa: E731
    assert frames(a) == frames(c) and len(frames(a)) == len(dataset_lines[0])
    assert task.model(a[0])["mel"].ndim == 0


def test_features_are_cached_and_reused(engine, dataset_lines, cache_dir, trained, monkeypatch):
    folder = vc_training.cache_folder(spec_for(dataset_lines, cache_dir), engine.cache_key())
    lines = sorted((folder / "lines").glob("*.npz"))
    assert len(lines) == len(dataset_lines[0]) + len(dataset_lines[1])
    assert len(list(folder.glob("base-*.npz"))) == 1
    mtimes = [p.stat().st_mtime_ns for p in lines]

    def no_analysis(*args, **kwargs):
        raise AssertionError("cached features were recomputed")
    monkeypatch.setattr(vc_training.enrollment, "parallel_utterance", no_analysis)
    monkeypatch.setattr(vc_training.enrollment, "fit_parallel", no_analysis)
    again = engine.training_task(spec_for(dataset_lines, cache_dir, seed=5))
    assert [p.stat().st_mtime_ns for p in lines] == mtimes
    first = trained[0]
    assert all(torch.equal(a.inputs, b.inputs) and torch.equal(a.target_z, b.target_z)
               for a, b in zip(again.train_lines, first.train_lines))
    for name, value in again.model.base.state_dict().items():
        assert torch.equal(value, first.model.base.state_dict()[name]), name


def test_untrained_model_is_the_enrolled_conversion(engine, trained):
    task, _, _, initial_state, _ = trained
    cond = base_conditioning(task)
    engine.use_finetune(None)
    stock = speak(engine, cond)
    engine.use_finetune(as_finetune(initial_state, "step0"))
    assert np.array_equal(speak(engine, cond), stock)  # zero residual: bit-exact
    engine.use_finetune(None)


def test_finetune_changes_audio_deterministically_and_none_restores_stock(engine, trained, demo_files):
    task, run, _, _, _ = trained
    cond = base_conditioning(task)
    engine.use_finetune(None)
    stock = speak(engine, cond)
    state = run.checkpoints.load(run.checkpoints.latest())["model"]
    engine.use_finetune(as_finetune(state, "latest"))
    tuned = speak(engine, cond)
    assert tuned.shape == stock.shape and not np.allclose(tuned, stock, atol=1e-3)
    assert np.array_equal(speak(engine, cond), tuned)
    # A fresh engine loading the checkpoint (as the studio does) speaks the same samples.
    fresh = PiperVCEngine(device="cpu")
    fresh.use_finetune(as_finetune(run.checkpoints.load(run.checkpoints.latest())["model"], "reloaded"))
    assert np.array_equal(speak(fresh, cond), tuned)
    # The checkpoint carries its base: a conditioning with another conversion changes nothing.
    other = dict(cond)
    other["conv.warp"] = np.asarray(float(cond["conv.warp"]) + 0.1)
    assert np.array_equal(speak(engine, other), tuned)
    engine.use_finetune(None)
    assert np.array_equal(speak(engine, cond), stock)


def test_bad_weights_and_bad_specs_are_refused(engine, dataset_lines, cache_dir, tmp_path):
    with pytest.raises(VoxmithError, match="do not fit the piper-vc engine"):
        engine.use_finetune(as_finetune({"gpt.weight": torch.zeros(2)}, "alien"))
    with pytest.raises(VoxmithError, match="no training lines"):
        engine.training_task(FinetuneSpec(train=(), validation=(), batch_size=1, seed=0, cache_dir=cache_dir))
    missing = (TrainingLine(tmp_path / "gone.wav", "some words here"),)
    with pytest.raises(VoxmithError, match="cannot be read"):
        engine.training_task(FinetuneSpec(train=missing, validation=(), batch_size=1, seed=0, cache_dir=cache_dir))
