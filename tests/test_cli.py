"""The `voxmith` command as users type it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def test_voices_lifecycle(run, demo_files):
    result = run("voices", "add", "alice", *map(str, demo_files))
    assert result.exit_code == 0, result.output
    assert "2 clip(s)" in result.output
    assert "alice" in run("voices", "list").output

    show = run("voices", "show", "alice")
    assert show.exit_code == 0
    assert "lj_1.flac" in show.output and "LUFS" in show.output and "speech" in show.output

    data = json.loads(run("voices", "show", "alice", "--json").output)
    assert [c["file"] for c in data["clips"]] == ["lj_1.flac", "lj_2.flac"]

    refused = run("voices", "remove", "alice", input="n\n")
    assert refused.exit_code != 0 and (run.home / "voices" / "alice").exists()
    assert run("voices", "remove", "alice", "--yes").exit_code == 0
    assert not (run.home / "voices" / "alice").exists()


def test_errors_are_messages_not_tracebacks(run, tmp_path, demo_files):
    cases = [
        ("voices", "show", "ghost"),
        ("voices", "add", "../x", str(demo_files[0])),
        ("voices", "add", "x", str(tmp_path / "missing.wav")),
    ]
    for args in cases:
        result = run(*args)
        assert result.exit_code == 1, args
        assert result.output.startswith("Error: "), result.output
        assert "Traceback" not in result.output
    run("voices", "add", "x", str(demo_files[0]))
    again = run("voices", "add", "x", str(demo_files[0]))
    assert again.exit_code == 1 and "--append" in again.output


def test_device_option_is_checked(run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run("--device", "cuda", "info")
    assert result.exit_code == 1 and "Error: Device 'cuda'" in result.output


def test_console_script_demo_end_to_end(tmp_path, monkeypatch):
    """`voxmith demo` in a fresh workspace (found through $VOXMITH_HOME) imports the demo voice and
    speaks, ranked, with the real engine and scoring models. Run in this process: its enrollment
    of the demo clips is the one the other tests share (conftest), which in a subprocess would be
    made again (about a CPU-minute). The console script itself is then started as users start it,
    on the workspace the demo made."""
    from pathlib import Path

    import numpy as np
    from click.testing import CliRunner

    from voxmith.audio import load_audio
    from voxmith.cli.main import cli

    monkeypatch.setenv("VOXMITH_HOME", str(tmp_path / "ws"))
    result = CliRunner().invoke(cli, ["-q", "demo"])
    assert result.exit_code == 0, result.output
    assert "Demo voice 'demo'" in result.output
    for sub in ("voices", "datasets", "training", "results", "models"):
        assert (tmp_path / "ws" / sub).is_dir()
    wav = Path(result.output.strip().splitlines()[-1])
    assert wav.parent == tmp_path / "ws" / "results" / "demo" and wav.suffix == ".wav"
    audio = load_audio(wav)
    assert audio.duration_s > 2.0 and np.sqrt(np.mean(audio.samples ** 2)) > 0.01
    assert wav.with_suffix(".json").exists()

    env = {**os.environ, "VOXMITH_HOME": str(tmp_path / "ws")}
    proc = subprocess.run([sys.executable, "-m", "voxmith", "-q", "voices", "list"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout
