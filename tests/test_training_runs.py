"""Training-run infrastructure with a tiny real torch model (regression on synthetic data, see tiny_training)."""

from __future__ import annotations

import io
import os
import queue
import signal

import pytest
import torch

from voxmith.errors import VoxmithError
from voxmith.training import (CheckpointStore, TrainingConfig, TrainingRun, defaults_for, load_config,
                              lr_factor, save_config, seed_everything, train_loop, validate)
from voxmith.training.config import ScheduleConfig, from_yaml, scaled_milestones, to_yaml
from tests.tiny_training import TinyTask, tiny_config


def new_run(tmp_path, name, config):
    return TrainingRun.create(tmp_path / "training", name, config)


def test_loss_decreases_and_files_are_written(tmp_path):
    config = tiny_config(epochs=10)
    config.schedule.learning_rate, config.schedule.milestones = 0.3, [5]
    run = new_run(tmp_path, "tiny", config)
    events = []
    result = train_loop(TinyTask(), run, progress=events.append)
    assert result.stopped == "finished" and result.step == 30 and result.resumed_from is None
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert rows[-1]["total_loss"] < 0.2 * rows[0]["total_loss"], [r["total_loss"] for r in rows]
    vals = [r["val_loss"] for r in rows if r["val_loss"] == r["val_loss"]]
    assert len(vals) == 10 and vals[-1] < 0.1 * vals[0], vals
    assert (run.folder / "loss.png").stat().st_size > 1000 and (run.folder / "lr.png").stat().st_size > 1000
    assert list((run.folder / "starts").glob("*.yaml"))
    assert run.checkpoints.latest().step == 30
    assert any(e.stage == "training" and e.done == 30 and e.total == 30 for e in events)
    # a finished run resumed does nothing more
    again = train_loop(TinyTask(), run)
    assert again.step == 30 and again.resumed_from == 30 and len(run.read_metrics()) == 30


def test_a_run_name_typed_in_either_unicode_form_is_one_run(tmp_path):
    run = new_run(tmp_path, "Zoe\u0308", tiny_config(epochs=1))  # 'Zoë' as 'e' + a combining diaeresis
    assert run.name == run.folder.name == "Zo\u00eb"
    assert TrainingRun.open(tmp_path / "training", "Zo\u00eb").folder == run.folder
    with pytest.raises(VoxmithError, match="already exists"):
        new_run(tmp_path, "Zo\u00eb", tiny_config(epochs=1))


def test_plots_are_drawn_at_the_first_and_last_save_and_when_asked(tmp_path, monkeypatch):
    """Every save writes a checkpoint; the plots (~0.3 CPU-s each time) only at a call's first and
    last save, at a `save` command, and otherwise once PLOT_INTERVAL_S has passed since the last."""
    from voxmith.training import loop

    drawn = []
    real_render = TrainingRun.render_plots

    def render(self):
        drawn.append(len(self.read_metrics()))
        return real_render(self)
    monkeypatch.setattr(TrainingRun, "render_plots", render)
    for interval, expected in ((1e9, [1, 3, 6]), (0.0, list(range(1, 7)))):
        monkeypatch.setattr(loop, "PLOT_INTERVAL_S", interval)
        drawn.clear()
        run = new_run(tmp_path, f"plots-{interval:g}", tiny_config(epochs=2, save=1, keep=10))  # 3 steps an epoch

        def commands():
            return ["save"] if len(run.read_metrics()) == 2 else []  # read during step 3
        result = train_loop(TinyTask(), run, commands=commands)
        assert result.step == 6 and [c.step for c in run.checkpoints.list()] == list(range(1, 7))
        assert drawn == expected
        assert (run.folder / "loss.png").stat().st_size > 1000


def _state(task, run):
    ckpt = run.checkpoints.load(run.checkpoints.latest())
    return task.model.state_dict(), ckpt["optimizer"], ckpt["scheduler"]


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("stop_at", [4, 6])  # mid-epoch and at an epoch boundary
def test_quit_and_resume_matches_uninterrupted_run(tmp_path, stop_at):
    straight_task = TinyTask()
    straight = new_run(tmp_path, "straight", tiny_config())
    train_loop(straight_task, straight)

    run = new_run(tmp_path, "stopped", tiny_config())
    commands: queue.Queue[str] = queue.Queue()

    def on_progress(event):
        if event.stage == "training" and event.done == stop_at:
            commands.put("quit")

    first = train_loop(TinyTask(), run, commands=commands, progress=on_progress)
    assert first.stopped == "quit" and first.step == stop_at and first.checkpoint.step == stop_at

    torch.manual_seed(999)  # a different RNG state and fresh weights: the checkpoint must restore all
    resumed_task = TinyTask(seed=7)
    second = train_loop(resumed_task, run)
    assert second.resumed_from == stop_at and second.step == 18 and second.stopped == "finished"
    _assert_same(_state(resumed_task, run), _state(straight_task, straight))
    assert [r["step"] for r in run.read_metrics()] == list(range(1, 19))
    assert [r["total_loss"] for r in run.read_metrics()] == [r["total_loss"] for r in straight.read_metrics()]


def test_ctrl_c_saves_and_stops(tmp_path):
    run = new_run(tmp_path, "interrupted", tiny_config())

    def on_progress(event):
        if event.stage == "training" and event.done == 2:
            os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    result = train_loop(TinyTask(), run, progress=on_progress)
    assert result.stopped == "interrupted" and result.step == 2
    assert run.checkpoints.latest().step == 2
    assert signal.getsignal(signal.SIGINT) is before


def test_save_eval_commands_and_unknown_command(tmp_path):
    run = new_run(tmp_path, "commands", tiny_config(epochs=2, validate=0))
    script = {1: ["save", "eval", "dance"], 3: ["quit"]}
    steps = iter(range(1, 100))
    events = []
    result = train_loop(TinyTask(), run, commands=lambda: script.get(next(steps), []), progress=events.append)
    assert result.stopped == "quit" and result.step == 3
    assert [info.step for info in run.checkpoints.list()] == [1, 3]
    rows = run.read_metrics()
    assert rows[0]["val_loss"] == rows[0]["val_loss"]  # "eval" validated step 1
    assert rows[1]["val_loss"] != rows[1]["val_loss"]  # NaN: not validated
    assert any("unknown command 'dance'" in e.detail for e in events)


def test_force_restart_starts_over(tmp_path):
    run = new_run(tmp_path, "again", tiny_config(epochs=1))
    train_loop(TinyTask(), run)
    result = train_loop(TinyTask(), run, force_restart=True)
    assert result.resumed_from is None and result.step == 3
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]


def test_changed_batch_settings_refuse_to_resume(tmp_path):
    run = new_run(tmp_path, "changed", tiny_config(epochs=1))
    train_loop(TinyTask(), run)
    config = run.load_config()
    config.schedule.grad_accumulation = 1
    with pytest.raises(VoxmithError, match="batch settings changed"):
        train_loop(TinyTask(), run, config=config)


def test_keep_last_pruning_keeps_the_best(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt")
    for step, val in [(1, 0.5), (2, 0.1), (3, 0.9), (4, None), (5, 0.7)]:
        store.save({"model": {}}, step, 0, val)
    deleted = store.prune(keep_last=2)
    assert sorted(p.name for p in deleted) == ["step_00000001.pt", "step_00000003.pt"]
    assert [i.step for i in store.list()] == [2, 4, 5]
    assert store.latest().step == 5 and store.best().step == 2
    assert not list((tmp_path / "ckpt").glob(".*"))  # no temporary files left
    assert store.load(store.best())["val_loss"] == 0.1


def test_checkpoint_restores_rng_and_rejects_garbage(tmp_path):
    store = CheckpointStore(tmp_path)
    seed_everything(3)
    info = store.save({}, 1, 0)
    expected = torch.rand(3)
    from voxmith.training.checkpoints import restore_rng_state
    restore_rng_state(store.load(info)["rng"])
    assert torch.equal(torch.rand(3), expected)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(VoxmithError, match="cannot be read"):
        store.load(tmp_path / "bad.pt")


def test_config_yaml_round_trip_with_comments(tmp_path):
    config = defaults_for(37, 30, dataset="alice")
    config.lora.enabled = True
    config.lora.target_modules = ["attn.c_attn"]
    text = to_yaml(config)
    assert "# weight of each loss the engine" in text and "# lines per batch" in text
    assert from_yaml(text) == config
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert TrainingConfig.from_dict({"schedule": {"epochs": 3}}).schedule.epochs == 3
    with pytest.raises(VoxmithError, match="unknown setting"):
        from_yaml("schedule:\n  epoch: 3\n")
    with pytest.raises(VoxmithError, match="should be a whole number"):
        from_yaml("schedule:\n  batch_size: lots\n")
    with pytest.raises(VoxmithError, match="not valid YAML"):
        from_yaml("schedule: [\n")


def test_defaults_and_milestones():
    assert scaled_milestones(60) == [2, 4, 9, 18, 25, 33, 50, 59]
    assert scaled_milestones(30) == [1, 2, 4, 9, 12, 16, 25]  # 59 -> 30 falls at the very end: dropped
    assert all(m < 10 for m in scaled_milestones(10))
    small = defaults_for(5, 20, dataset="tiny")
    assert small.schedule.batch_size == 5 and small.schedule.grad_accumulation == 3
    assert validate(small, 5, 1) == []
    big = defaults_for(1000, 50, dataset="big")
    assert big.schedule.batch_size == 16 and validate(big, 1000, 20) == []


def test_validation_messages_are_in_words():
    config = defaults_for(100, 10, dataset="alice")
    config.schedule.batch_size = 64
    config.schedule.scheduler = "linear"
    config.schedule.learning_rate = 0
    config.checkpoints.keep_last = 0
    config.lora.enabled, config.lora.target_modules = True, []
    problems = validate(config, 37, 0)
    text = "\n".join(problems)
    assert "batch size 64 is larger than the 37 training lines" in text
    assert "scheduler 'linear' is unknown" in text
    assert "learning rate is 0" in text
    assert "no validation lines" in text
    assert "keep last 0" in text
    assert "target_modules is empty" in text
    assert "only 3 batch(es) for 4 training processes" in "\n".join(validate(defaults_for(37, 5, "a"), 37, 4,
                                                                              world_size=4))
    bad_name = defaults_for(10, 5, dataset="../etc")
    assert any("dataset name" in p for p in validate(bad_name, 10, 2))


def test_lr_schedules():
    multistep = ScheduleConfig(epochs=10, milestones=[2, 5], gamma=0.5, warmup_steps=0)
    assert [lr_factor(s, multistep, 3, 30) for s in (0, 5, 6, 14, 15)] == [1, 1, 0.5, 0.5, 0.25]
    warm = ScheduleConfig(epochs=10, scheduler="cosine", warmup_steps=4)
    assert lr_factor(0, warm, 3, 30) == 0.25 and lr_factor(4, warm, 3, 30) == 1.0
    assert lr_factor(29, warm, 3, 30) < 0.01


def test_run_names_are_checked(tmp_path):
    with pytest.raises(VoxmithError):
        TrainingRun.create(tmp_path, "../escape", TrainingConfig())
    TrainingRun.create(tmp_path, "ok", TrainingConfig())
    with pytest.raises(VoxmithError, match="already exists"):
        TrainingRun.create(tmp_path, "ok", TrainingConfig())
    assert TrainingRun.open(tmp_path, "ok").load_config() == TrainingConfig()
    with pytest.raises(VoxmithError, match="No training run"):
        TrainingRun.open(tmp_path, "missing")


def test_tensorboard_log_has_each_step_once_after_a_crash_and_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = new_run(tmp_path, "tb", tiny_config(epochs=2, save=2))  # 6 steps, checkpoints at 2, 4, 6

    def crash_in_step_6(event):  # step 5 is logged but not saved
        if event.stage == "training" and event.done == 6:
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train_loop(TinyTask(), run, progress=crash_in_step_6)
    assert run.checkpoints.latest().step == 4
    train_loop(TinyTask(), run)  # redoes steps 5 and 6

    # In the order written: events.out.tfevents.SECONDS.HOST.PID.COUNTER, numbers compared as numbers
    # (by name, a writer counted 10 sorts before one counted 9 in the same second).
    files = sorted(run.tensorboard_dir.glob("events.out.tfevents.*"),
                   key=lambda f: (int(f.name.split(".")[3]), int(f.name.rsplit(".", 1)[1])))
    assert len(files) == 2
    raw_steps = [EventAccumulator(str(f)).Reload().Scalars("loss/total") for f in files]
    assert [e.step for e in raw_steps[0]] == [1, 2, 3, 4, 5]  # the crashed start's step 5 is still on disk
    log = EventAccumulator(str(run.tensorboard_dir)).Reload()
    rows = run.read_metrics()
    for tag, column in (("loss/total", "total_loss"), ("loss/mel", "mel_loss"), ("loss/text", "text_loss"),
                        ("learning_rate", "lr")):
        events = log.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3, 4, 5, 6], tag  # purge_step hid the stale step 5
        assert [e.value for e in events] == pytest.approx([r[column] for r in rows], rel=1e-6), tag
    validated = [r for r in rows if r["val_loss"] == r["val_loss"]]
    assert [e.step for e in log.Scalars("loss/validation")] == [3, 6] == [r["step"] for r in validated]
    assert [e.value for e in log.Scalars("loss/validation")] == pytest.approx([r["val_loss"] for r in validated])


def test_adamw8bit_is_explained_when_it_cannot_run(tmp_path):
    import importlib.util

    config = tiny_config()
    assert "# adamw, or adamw8bit" in to_yaml(config) and config.misc.optimizer == "adamw"
    config.misc.optimizer = "adamw8bit"
    problems = "\n".join(validate(config, 48, 16, device="cpu"))
    assert "adamw8bit runs only on a CUDA GPU, but this run trains on cpu" in problems
    if importlib.util.find_spec("bitsandbytes") is None:
        assert "needs the bitsandbytes package, which is not installed; install voxmith[cuda]" in problems
    with pytest.raises(VoxmithError, match="runs only on a CUDA GPU"):
        train_loop(TinyTask(), new_run(tmp_path, "8bit", config))
    config.misc.optimizer = "sgd"
    assert "optimizer 'sgd' is unknown; use adamw or adamw8bit." in validate(config, 48, 16)


def test_stdin_commands_feed_the_loop_through_a_pipe(tmp_path, monkeypatch):
    import threading

    from voxmith.training import stdin_commands

    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, encoding="utf-8") as reader, os.fdopen(write_fd, "w", encoding="utf-8") as writer:
        commands = stdin_commands(reader)
        writer.write("  EVAL \nquit\n")
        writer.flush()
        assert [commands.get(timeout=10), commands.get(timeout=10)] == ["EVAL", "quit"]
        writer.write("quit\n")
        writer.close()  # end of input: the reader thread just ends
        assert commands.get(timeout=10) == "quit"
        for thread in threading.enumerate():
            if thread.name == "voxmith-training-commands":
                thread.join(timeout=10)
                assert not thread.is_alive()
        commands.put("quit")
        result = train_loop(TinyTask(), new_run(tmp_path, "piped", tiny_config()), commands=commands)
        assert result.stopped == "quit" and result.step == 1
    monkeypatch.setenv("RANK", "1")  # torchrun's other processes leave the terminal to rank 0
    assert stdin_commands(io.StringIO("quit\n")).empty()


def test_gradient_clipping_limits_the_update(tmp_path):
    # AdamW normalises the gradient's scale away, except against its eps (1e-8): a gradient
    # clipped to a norm of 1e-12 gives steps ~1e-4 of the unclipped ones, so the loss stays put.
    losses = {}
    for name, clip in (("free", 0.0), ("clipped", 1e-12)):
        config = tiny_config(epochs=4)
        config.schedule.learning_rate, config.schedule.max_grad_norm = 0.3, clip
        run = new_run(tmp_path, name, config)
        train_loop(TinyTask(dropout=0.0), run)
        losses[name] = [r["total_loss"] for r in run.read_metrics()]
    assert losses["free"][-1] < 0.3 * losses["free"][0]
    assert losses["clipped"][-1] > 0.95 * losses["clipped"][0]
    config = tiny_config()
    config.schedule.max_grad_norm = -1.0
    assert any("max grad norm -1.0 must be 0" in p for p in validate(config, 48, 16))


KILLED_CHILD = """
import os, signal, sys
from voxmith.training import TrainingRun, train_loop
from tests.tiny_training import TinyTask

def on_progress(event):
    if event.stage == "training" and event.done == 5:
        os.kill(os.getpid(), signal.SIGKILL)  # no handler, no cleanup: as a crash or an OOM kill

train_loop(TinyTask(), TrainingRun(sys.argv[1]), progress=on_progress)
"""


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    straight_task = TinyTask()
    straight = new_run(tmp_path, "straight", tiny_config(save=2))
    train_loop(straight_task, straight)

    run = new_run(tmp_path, "killed", tiny_config(save=2))
    root = Path(__file__).resolve().parents[1]
    child = subprocess.run([sys.executable, "-c", KILLED_CHILD, str(run.folder)], cwd=root, timeout=120)
    assert child.returncode == -signal.SIGKILL
    assert run.checkpoints.latest().step == 4  # at most one save interval (2 steps) is lost
    assert [p.name for p in run.checkpoints.folder.iterdir() if p.name.startswith(".")] == []  # no temp files

    resumed_task = TinyTask(seed=7)
    result = train_loop(resumed_task, run)
    assert result.resumed_from == 4 and result.step == 18
    _assert_same(_state(resumed_task, run), _state(straight_task, straight))
    assert [r["step"] for r in run.read_metrics()] == list(range(1, 19))
