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


def test_console_script_demo_end_to_end(tmp_path):
    """`python -m voxmith demo` in a fresh workspace imports the demo voice and speaks."""
    from pathlib import Path

    import numpy as np

    from voxmith.audio import load_audio

    env = {**os.environ, "VOXMITH_HOME": str(tmp_path / "ws")}
    proc = subprocess.run([sys.executable, "-m", "voxmith", "-q", "demo"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Demo voice 'demo'" in proc.stdout
    for sub in ("voices", "datasets", "training", "results", "models"):
        assert (tmp_path / "ws" / sub).is_dir()
    wav = Path(proc.stdout.strip().splitlines()[-1])
    assert wav.parent == tmp_path / "ws" / "results" / "demo" and wav.suffix == ".wav"
    audio = load_audio(wav)
    assert audio.duration_s > 2.0 and np.sqrt(np.mean(audio.samples ** 2)) > 0.01
    assert wav.with_suffix(".json").exists()
