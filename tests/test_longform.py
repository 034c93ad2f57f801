"""Long speech that survives interruptions (studio/unfinished.py): finished sentences are kept on
disk, and the same request made again resumes and gives the same audio as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxmith.errors import VoxmithError
from voxmith.studio import Studio
from voxmith.studio.speech import SpeakRequest

REPO = Path(__file__).resolve().parents[1]
TEXT = "\n\n".join([
    "The lighthouse keeper woke before dawn. He climbed the stairs and trimmed the wick.",
    "Far out at sea a ship turned toward the light. Its captain counted the flashes and smiled.",
    "By noon the fog had lifted. The keeper slept, and the gulls kept watch.",
    "In the evening the lamp was lit again. Nobody thanked him, and nobody needed to.",
])
SENTENCES = 8


def _request(**kwargs) -> SpeakRequest:
    values = dict(text=TEXT, voice="demo", engine="tone", seed=5, rank=False, resumable=True)
    values.update(kwargs)
    return SpeakRequest(**values)


def _studio(path: Path) -> Studio:
    studio = Studio(path, device="cpu")
    studio.import_demo_voice()
    return studio


def _unfinished(studio: Studio) -> list[Path]:
    return sorted((studio.workspace.home / ".cache" / "unfinished").glob("*/0*.json"))


def test_interrupted_speech_resumes_to_the_same_audio(tmp_path, tone_engine):
    reference = _studio(tmp_path / "a").speak(_request())
    studio = _studio(tmp_path / "b")
    stream = studio.speak_stream(_request())
    for k, _ in enumerate(stream):
        if k == 2:
            break
    stream.close()  # as Ctrl-C or a client going away would
    assert len(_unfinished(studio)) == 3 and not stream.output.exists()

    events = []
    result = studio.speak(_request(), progress=events.append)
    assert any(e.stage == f"resuming: 3 of {SENTENCES} sentences already done" for e in events)
    assert np.array_equal(result.samples, reference.samples)
    assert result.path == stream.output  # the name the first run reserved
    assert result.sidecar["resumed"] == {"sentences_done_before": 3, "sentences_total": SENTENCES}
    assert [s["text"] for s in result.sidecar["sentences"]] == [s["text"] for s in reference.sidecar["sentences"]]
    assert _unfinished(studio) == [] and not (studio.workspace.home / ".cache" / "unfinished").exists()


def test_random_seed_is_kept_for_the_resumed_run(tmp_path, tone_engine):
    studio = _studio(tmp_path / "b")
    stream = studio.speak_stream(_request(seed=None, candidates=2))
    next(iter(stream))
    stream.close()
    result = studio.speak(_request(seed=-1, candidates=2))  # -1 is "random" too: the same request
    assert result.sidecar["resumed"]["sentences_done_before"] == 1
    again = _studio(tmp_path / "c").speak(_request(seed=result.sidecar["seed"], candidates=2))
    assert np.array_equal(result.samples, again.samples)
    for sentence in result.sidecar["sentences"]:  # the first run's take files are all still there
        assert all((result.path.parent / take["file"]).is_file() for take in sentence["takes"])


def test_a_different_request_does_not_resume(tmp_path, tone_engine):
    studio = _studio(tmp_path / "b")
    stream = studio.speak_stream(_request())
    next(iter(stream))
    stream.close()
    result = studio.speak(_request(seed=6))
    assert "resumed" not in result.sidecar
    assert len(_unfinished(studio)) == 1  # the seed-5 speech can still be resumed


def test_plain_requests_keep_nothing_and_one_speech_is_made_once_at_a_time(tmp_path, tone_engine):
    studio = _studio(tmp_path / "b")
    stream = studio.speak_stream(_request(resumable=False))
    next(iter(stream))
    stream.close()
    assert _unfinished(studio) == []
    first = studio.speak_stream(_request())
    with pytest.raises(VoxmithError, match="Another voxmith process is making this same speech"):
        studio.speak_stream(_request())
    first.close()
    assert studio.speak(_request()).path.is_file()


def _voxmith(home: Path, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "SLOW_TONE_S": "0.4"}
    return subprocess.Popen([sys.executable, str(REPO / "tests" / "slow_tone_cli.py"), "--home", str(home), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_killed_cli_run_resumes_to_the_same_audio(tmp_path, tone_engine):
    """`speak --text-file` killed with SIGKILL mid-way, then run again with the same arguments,
    makes exactly the file an uninterrupted run makes."""
    home = tmp_path / "ws"
    _studio(home)
    text_file = tmp_path / "story.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    args = ["speak", "-v", "demo", "-e", "tone", "--no-rank", "--seed", "11", "--text-file", str(text_file)]

    full = _voxmith(home, *args, "-o", str(tmp_path / "full.wav"))
    assert full.wait(timeout=300) == 0, full.stderr.read()

    killed = _voxmith(home, *args, "-o", str(tmp_path / "resumed.wav"))
    store = home / ".cache" / "unfinished"
    deadline = time.monotonic() + 300
    while len(list(store.glob("*/0*.json"))) < 3:
        assert killed.poll() is None, "the run finished before it could be killed: " + killed.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    done_before = len(list(store.glob("*/0*.json")))
    assert 3 <= done_before < SENTENCES and not (tmp_path / "resumed.wav").exists()

    resumed = _voxmith(home, *args, "-o", str(tmp_path / "resumed.wav"))
    _, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert f"resuming: {done_before} of {SENTENCES} sentences already done" in stderr
    first, second = sf.read(tmp_path / "full.wav", dtype="int16")[0], sf.read(tmp_path / "resumed.wav", dtype="int16")[0]
    assert np.array_equal(first, second)
    sidecar = json.loads((tmp_path / "resumed.json").read_text())
    assert sidecar["resumed"]["sentences_done_before"] == done_before
    assert not list(store.glob("*"))
