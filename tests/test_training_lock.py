"""One trainer per training run: the lock names its holder, refuses a second trainer (another
process, the web UI's Start) and is recovered when its holder died."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tiny_training import TinyTask, tiny_config
from voxmith.errors import VoxmithError
from voxmith.studio.training_jobs import TrainingJobs
from voxmith.training import TrainingRun, train_loop
from voxmith.training.lock import LOCK_FILE, LockHolder, RunBusy, TrainerLock

HOLD = """
import sys, time
from voxmith.training.lock import TrainerLock
TrainerLock(sys.argv[1]).acquire()
print("holding", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder_process(tmp_path):
    """Another process holding the lock of run folder tmp_path/run, as a second `train run` would."""
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "holding"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_second_trainer_is_refused_with_the_holder_named(holder_process):
    folder, proc = holder_process
    with pytest.raises(RunBusy) as info:
        TrainerLock(folder).acquire()
    message = str(info.value)
    assert f"process {proc.pid} on " in message and "-c" in message and "Wait for it" in message
    assert TrainerLock(folder).holder().pid == proc.pid


def test_lock_of_a_dead_trainer_is_taken_over(holder_process):
    folder, proc = holder_process
    proc.send_signal(signal.SIGKILL)  # killed: no chance to clean up, the file stays
    proc.wait()
    assert json.loads((folder / LOCK_FILE).read_text())["pid"] == proc.pid
    assert TrainerLock(folder).holder() is None
    with TrainerLock(folder):
        assert json.loads((folder / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (folder / LOCK_FILE).exists()  # released cleanly: nothing left behind


def test_train_loop_refuses_a_held_run_and_touches_nothing(tmp_path):
    run = TrainingRun.create(tmp_path / "training", "busy", tiny_config(epochs=1))
    with TrainerLock(run.folder):  # e.g. the web UI's job in this same process
        with pytest.raises(RunBusy, match="already being trained"):
            train_loop(TinyTask(), run)
        assert not run.metrics_path.exists() and not run.checkpoints.list()
    result = train_loop(TinyTask(), run)  # free again
    assert result.stopped == "finished" and not (run.folder / LOCK_FILE).exists()


def test_web_ui_start_is_refused_while_the_cli_trains():
    class Runs:  # only what TrainingJobs asks of the training runs
        def trainer(self, name):
            return LockHolder(4242, "box", "2026-11-28T09:00:00", "voxmith train run ft")

        def check(self, name):  # pragma: no cover - must not be reached
            raise AssertionError("checked a busy run")

    with pytest.raises(VoxmithError, match="process 4242 on box.*voxmith train run ft"):
        TrainingJobs(Runs()).start("ft")
