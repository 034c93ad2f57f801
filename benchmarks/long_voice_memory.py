"""Peak memory of `voxmith speak` for a voice made of one long clip, with the real default engine.

A voice of one 10-minute clip used to be analysed for ~6 minutes and killed by the kernel at
~21 GB (piper-vc aligns whole clips). Now conditioning uses a bounded selection of the audio
(voxmith.studio.conditioning_clips). This builds a long clip from real speech (the clips of one
../shared/voices speaker back to back, over and over; the demo voice when absent), adds it as a
voice in a fresh workspace and runs the first `speak` (enrollment, ranking) in a child process,
whose peak RSS the kernel reports when it ends.

    .venv/bin/python benchmarks/long_voice_memory.py [--minutes 10] [--voice tom] [--out PATH]
Writes benchmarks/results/long_voice_memory.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "long_voice_memory.json"
VOICES_DIR = Path(os.environ.get("VOXMITH_SHARED_VOICES", ROOT.parent / "shared" / "voices"))


def long_clip(voice: str, minutes: float, path: Path) -> str:
    from voxmith.audio import load_audio, resample
    from voxmith.studio import demo_voice_files

    folder = VOICES_DIR / voice
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac", ".mp3")) \
        if folder.is_dir() else demo_voice_files()
    rate = 22050
    pieces = []
    for f in files:
        audio = load_audio(f)
        pieces += [resample(audio.samples, audio.sample_rate_hz, rate), np.zeros(int(0.6 * rate), np.float32)]
    one_round = np.concatenate(pieces)
    total = int(minutes * 60 * rate)
    sf.write(path, np.tile(one_round, int(np.ceil(total / one_round.shape[0])))[:total], rate)
    return voice if folder.is_dir() else "demo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--voice", default="tom")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        source = long_clip(args.voice, args.minutes, work / "long.wav")
        home = work / "ws"
        cli = [sys.executable, "-m", "voxmith", "--home", str(home), "-q"]
        subprocess.run(cli + ["voices", "add", "long", str(work / "long.wav")], check=True, env=env)
        started = time.perf_counter()
        child = subprocess.Popen(cli + ["speak", "-v", "long", "--seed", "1", "-o", str(work / "out.wav"),
                                        "This voice was enrolled from one long recording."],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - started
        stdout, stderr = child.stdout.read(), child.stderr.read()
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
    result = {
        "what": "peak RSS of the first `voxmith speak` (piper-vc enrollment + ranking) for a voice of one "
                f"{args.minutes:g}-minute clip",
        "command": f"python benchmarks/long_voice_memory.py --minutes {args.minutes:g} --voice {args.voice}",
        "source_voice": source, "exit_status": os.waitstatus_to_exitcode(status),
        "peak_rss_gb": round(usage.ru_maxrss / 1024 ** 2, 3), "limit_gb": 4.0,
        "seconds": round(seconds, 1), "load_average_at_end": float(load),
        "note": [line for line in stderr.splitlines() if line.startswith("Note:")],
        "stdout_tail": stdout.strip().splitlines()[-1:], "stderr_tail": stderr.strip().splitlines()[-3:],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
