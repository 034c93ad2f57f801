"""Distributed training: 2 CPU processes started by torchrun (gloo) against one process.

The worker is `tests/tiny_training.py`, launched exactly as a user launches training:
`python -m torch.distributed.run --standalone --nproc-per-node 2 -m tests.tiny_training RUN ...`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.tiny_training import TinyTask, tiny_config
from voxmith.errors import VoxmithError
from voxmith.training import TrainingRun, train_loop
from voxmith.training.distributed import plan_step, steps_per_epoch

REPO = Path(__file__).resolve().parents[1]
LINES = 56  # 7 batches of 8: the last group of each epoch is one batch short for 2 processes


def torchrun(run: TrainingRun, *args: str) -> list[dict]:
    """Train `run` in 2 processes; return each rank's result record."""
    for old in run.folder.parent.glob("result-rank*.json"):
        old.unlink()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("RANK", None)
    # torchrun makes a torchelastic_* folder in the temporary folder per launch and leaves it: in the
    # test's own folder, not one more in /tmp per run of the suite.
    env["TMPDIR"] = str(run.folder.parent / "tmp")
    os.makedirs(env["TMPDIR"], exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "tests.tiny_training", str(run.folder), "--lines", str(LINES), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [json.loads((run.folder.parent / f"result-rank{r}.json").read_text()) for r in (0, 1)]


def weights(run: TrainingRun) -> dict[str, torch.Tensor]:
    return run.checkpoints.load(run.checkpoints.latest())["model"]


def assert_same_training(run: TrainingRun, reference: TrainingRun) -> None:
    rows, expected = run.read_metrics(), reference.read_metrics()
    assert [r["step"] for r in rows] == [r["step"] for r in expected]
    for column in ("total_loss", "mel_loss", "val_loss", "lr", "epoch"):
        assert [r[column] for r in rows] == pytest.approx([r[column] for r in expected], rel=1e-6, nan_ok=True)
    got, want = weights(run), weights(reference)
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=1e-7)


def test_two_processes_train_like_one_with_twice_the_accumulation(tmp_path):
    training = tmp_path / "training"
    reference = TrainingRun.create(training, "one", tiny_config(epochs=2, lines=LINES, accumulation=2))
    assert train_loop(TinyTask(lines=LINES, dropout=0.0), reference).step == 8  # 4 steps per epoch

    run = TrainingRun.create(training, "two", tiny_config(epochs=2, lines=LINES, accumulation=1))
    # "quit" reaches rank 0 only; rank 1 must stop at the same step or the run would hang
    first = torchrun(run, "--stop-at", "3", "--stop-with", "quit")
    assert [(r["stopped"], r["step"], r["resumed_from"]) for r in first] == [("quit", 3, None)] * 2
    assert first[0]["checkpoint"] == first[1]["checkpoint"] == str(run.checkpoints.folder / "step_00000003.pt")
    assert first[0]["events"] > 0 and first[1]["events"] == 0  # only rank 0 reports progress
    assert all(not key.startswith("module.") for key in weights(run))  # the unwrapped module was saved

    # 2 processes -> 1 process: the same checkpoint resumed with the same global batch
    single = TrainingRun(training / "two-then-one")
    shutil.copytree(run.folder, single.folder)
    config = single.load_config()
    config.schedule.grad_accumulation = 2
    single.save_config(config)
    assert train_loop(TinyTask(lines=LINES, dropout=0.0), single).resumed_from == 3
    assert_same_training(single, reference)

    # Ctrl+C that only rank 0 receives stops both processes, then 1 process goes on, then 2 finish
    second = torchrun(run, "--stop-at", "5", "--stop-with", "sigint")
    assert [(r["stopped"], r["step"], r["resumed_from"]) for r in second] == [("interrupted", 5, 3)] * 2
    config = run.load_config()
    config.schedule.grad_accumulation = 2
    third = train_loop(TinyTask(lines=LINES, dropout=0.0), run, config=config, commands=lambda: ["quit"])
    assert (third.stopped, third.step, third.resumed_from) == ("quit", 6, 5)
    last = torchrun(run)
    assert [(r["stopped"], r["step"], r["resumed_from"]) for r in last] == [("finished", 8, 6)] * 2
    assert_same_training(run, reference)

    # one set of files: each start recorded once, one event file per start, no stray files
    assert len(list((run.folder / "starts").glob("*.yaml"))) == 4
    assert len(list(run.tensorboard_dir.glob("events.out.tfevents.*"))) == 4
    assert sorted(p.name for p in run.checkpoints.folder.iterdir()) == [
        f"step_{s:08d}.{ext}" for s in (6, 8) for ext in ("json", "pt")]  # keep_last 2; 6 is also the best
    assert sorted(p.name for p in run.folder.iterdir()) == [
        "checkpoints", "config.yaml", "loss.png", "lr.png", "metrics.csv", "starts", "tensorboard"]


@pytest.mark.parametrize("batches, world, accumulation", [(7, 2, 1), (7, 2, 3), (9, 4, 2), (1, 3, 1), (12, 3, 2)])
def test_each_step_shares_its_batches_without_gaps_or_repeats(batches, world, accumulation):
    done, steps = 0, 0
    while done < batches:
        plans = [plan_step(done, batches, accumulation, world, rank) for rank in range(world)]
        group = plans[0].group_size
        assert group == min(world * accumulation, batches - done)
        assert len({len(p.batches) for p in plans}) == 1  # every process runs as many passes (DDP needs it)
        real = sorted(b for p in plans for b, w in zip(p.batches, p.weights) if w > 0)
        assert real == list(range(done, done + group))  # each batch of the group exactly once
        # after DDP's mean over processes, each real batch weighs 1/group: the mean over the group
        assert sum(w for p in plans for w in p.weights) / world == pytest.approx(1.0)
        done, steps = done + group, steps + 1
    assert steps == steps_per_epoch(batches, accumulation, world)


def test_torchrun_environment_problems_are_explained(tmp_path, monkeypatch):
    run = TrainingRun.create(tmp_path / "training", "env", tiny_config(epochs=1))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(VoxmithError, match="do not fit together"):
        train_loop(TinyTask(), run)
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(VoxmithError, match="start distributed training with torchrun"):
        train_loop(TinyTask(), run)
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(VoxmithError, match="not a device"):
        train_loop(TinyTask(), run, device="gpu9")
