"""A voice made of one 10-minute clip: `speak` conditions on a bounded selection of it and stays
far below 4 GB. The engine is a recording stand-in (the studio's part is what is tested here; the
real piper-vc run on such a voice is measured by benchmarks/long_voice_memory.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from voxmith.audio import Audio, load_audio
from voxmith.studio.conditioning_clips import (MAX_TOTAL_S, PIECE_MAX_S, select_clips, selection_tag)

ROOT = Path(__file__).resolve().parents[1]
PEAK_LIMIT_BYTES = 4 * 1024 ** 3

SPEAK = """
import json, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.tone_engine import ToneEngine
from voxmith.engines import register_engine

class RecordingTone(ToneEngine):
    name = "recording-tone"
    def prepare_conditioning(self, clips, progress=None):
        Path(sys.argv[2]).write_text(json.dumps([c.duration_s for c in clips]))
        return super().prepare_conditioning(clips, progress)

register_engine("recording-tone", RecordingTone)
from voxmith.cli.main import cli
try:
    cli(sys.argv[3:], prog_name="voxmith")
finally:
    # VmHWM is this program's own peak; ru_maxrss would also count the pytest process that spawned it
    # (Linux carries the parent's high-water mark across fork and exec into the child's rusage).
    status = Path("/proc/self/status")
    hwm = [l.split()[1] for l in status.read_text().splitlines() if l.startswith("VmHWM:")] if status.exists() else []
    print("PEAK_KB", hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
"""


def ten_minutes_of_speech(demo_files) -> tuple[np.ndarray, int]:
    """Real speech (the demo clips, over and over, with short pauses) for 10 minutes."""
    clips = [load_audio(p) for p in demo_files]
    rate = clips[0].sample_rate_hz
    pause = np.zeros(int(0.6 * rate), np.float32)
    one_round = np.concatenate([part for c in clips for part in (c.samples, pause)])
    repeats = int(np.ceil(600 * rate / one_round.shape[0]))
    return np.tile(one_round, repeats)[: 600 * rate], rate


def test_short_voices_pass_through_unchanged(demo_files):
    clips = [load_audio(p) for p in demo_files]
    selection = select_clips(clips)
    assert not selection.changed and selection.clips == clips
    assert selection_tag([c.duration_s for c in clips]) == ""  # their cached conditioning stays valid


def test_speak_with_a_ten_minute_clip_is_bounded(tmp_path, demo_files, studio):
    samples, rate = ten_minutes_of_speech(demo_files)
    clip = tmp_path / "ten minutes.wav"
    sf.write(clip, samples, rate)
    studio.voices.add("long", [clip])
    seen = tmp_path / "seen.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-c", SPEAK, str(ROOT), str(seen), "--home", str(studio.workspace.home), "-q", "speak",
         "-e", "recording-tone", "-v", "long", "--no-rank", "-o", str(tmp_path / "out.wav"), "Hello there."],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    peak_bytes = int(proc.stdout.split("PEAK_KB")[1].split()[0]) * 1024
    assert peak_bytes < PEAK_LIMIT_BYTES, peak_bytes
    durations = json.loads(seen.read_text())
    assert MAX_TOTAL_S - PIECE_MAX_S <= sum(durations) <= MAX_TOTAL_S
    assert max(durations) <= PIECE_MAX_S + 0.5 and len(durations) >= 8
    assert "10.0 min of audio; conditioning uses the 2.0 min" in proc.stderr  # said, not silent
    assert (tmp_path / "out.wav").exists()


def test_selection_keeps_the_densest_pieces_in_order(monkeypatch):
    """The budget logic with scripted pieces: densest first up to MAX_TOTAL_S, original order kept."""
    from voxmith.studio import conditioning_clips

    rate = 100
    durations = [14, 13, 12, 11, 10, 9, 14, 13, 12, 11, 10, 9]  # 138 s in all: over the budget
    density = dict(zip(range(12), [0.2, 0.9, 0.5, 0.95, 0.1, 0.8, 0.7, 0.3, 0.6, 0.85, 0.4, 0.75]))
    pieces = [Audio(np.full(d * rate, i, np.float32), rate) for i, d in enumerate(durations)]
    monkeypatch.setattr(conditioning_clips, "_pieces", lambda clip: pieces)
    monkeypatch.setattr(conditioning_clips, "_speech_density", lambda samples, rate_hz: density[int(samples[0])])
    selection = select_clips([Audio(np.zeros(138 * rate, np.float32), rate)])
    chosen = [int(c.samples[0]) for c in selection.clips]
    assert chosen == sorted(chosen)  # in the recording's order
    assert selection.used_s <= MAX_TOTAL_S
    dropped = set(range(12)) - set(chosen)
    assert max(density[i] for i in dropped) <= min(density[i] for i in chosen) or \
        sum(durations[i] for i in chosen) + min(durations[i] for i in dropped) > MAX_TOTAL_S
    assert 0 in dropped and 4 in dropped  # the two sparsest
