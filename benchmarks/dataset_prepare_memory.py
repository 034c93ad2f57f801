"""Peak memory of `dataset prepare` from several long recordings, before and after it decoded one
source at a time.

Builds three 20-minute recordings of real speech at 44.1 kHz (the clips of one ../shared/voices
speaker each, back to back with 0.3-1.2 s pauses, over and over; the demo voice when absent) and
prepares one dataset from all three in a child process per side, whose peak RSS the kernel reports
when it ends: "before" runs the code of git revision `--before` (extracted with `git archive`),
"after" this checkout's. Whisper is stubbed out in both (every segment "heard" as the same words):
transcription reads the written segments one at a time on either side, and takes hours on 2 cores;
slicing, VAD, the speaker check and the writing are real. The two datasets are compared file by file.

    .venv/bin/python benchmarks/dataset_prepare_memory.py [--minutes 20] [--sources 3] [--before REV]
Writes benchmarks/results/dataset_prepare_memory.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from machine import cpu_name  # benchmarks/machine.py: the script's own folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "dataset_prepare_memory.json"
VOICES_DIR = Path(os.environ.get("VOXMITH_SHARED_VOICES", ROOT.parent / "shared" / "voices"))
SPEAKERS = ("tom", "emma", "daniel", "pat", "angie")
RATE_HZ = 44100
BEFORE = "fc18f33"  # the last commit that held every source decoded at once


def long_recording(speaker: str, minutes: float, path: Path, seed: int) -> str:
    from voxmith.audio import load_audio, resample
    from voxmith.studio import demo_voice_files

    folder = VOICES_DIR / speaker
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac", ".mp3")) \
        if folder.is_dir() else demo_voice_files()
    clips = [resample(a.samples, a.sample_rate_hz, RATE_HZ) for a in map(load_audio, files)]
    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE_HZ)
    with sf.SoundFile(path, "w", RATE_HZ, 1, format="FLAC", subtype="PCM_16") as out:
        written = 0
        while written < total:
            for clip in clips:
                piece = np.concatenate([clip, np.zeros(int(rng.uniform(0.3, 1.2) * RATE_HZ), np.float32)])
                piece = piece[: total - written]
                out.write(piece)
                written += piece.size
    return speaker if folder.is_dir() else "demo"


def worker(home: Path, sources: list) -> None:
    """Child: prepare dataset 'bench' from `sources` with Whisper stubbed out."""
    from types import SimpleNamespace

    import voxmith.asr
    from voxmith.studio import Studio

    heard = SimpleNamespace(text="Some words.", language="en",
                            segments=[SimpleNamespace(avg_logprob=-0.2, no_speech_prob=0.01)])
    voxmith.asr.get_transcriber = lambda *a, **k: SimpleNamespace(transcribe=lambda *a, **k: heard)
    summary = Studio(home, device="cpu").prepare_dataset("bench", sources)
    print(json.dumps({"segments": summary["segments"], "sources": summary["sources"]}))


def run_side(src: Path, home: Path, sources: list) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    home.mkdir(parents=True)
    with open(home / "stdout.txt", "w+") as stdout, open(home / "stderr.txt", "w+") as stderr:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, __file__, "--worker", str(home / "ws"), *map(str, sources)],
                                 env=env, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # the child's own peak RSS, as the kernel counted it
        seconds = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        said, complained = stdout.read(), stderr.read()
    return {"exit_status": os.waitstatus_to_exitcode(status), "peak_rss_gb": round(usage.ru_maxrss / 1024 ** 2, 3),
            "seconds": round(seconds, 1), "stdout_tail": said.strip().splitlines()[-1:],
            "stderr_tail": complained.strip().splitlines()[-3:]}


def dataset_digest(folder: Path) -> dict:
    """Every file's SHA-256 (segments.json without its creation time)."""
    digests = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        data = path.read_bytes()
        if path.name == "segments.json":
            record = json.loads(data)
            record.pop("created", None)
            data = json.dumps(record, sort_keys=True).encode()
        digests[path.relative_to(folder).as_posix()] = hashlib.sha256(data).hexdigest()
    return digests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--sources", type=int, default=3)
    parser.add_argument("--before", default=BEFORE, help="git revision of the 'before' code")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        before_src = work / "before"
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "src"], check=True,
                                 capture_output=True).stdout
        before_src.mkdir()
        subprocess.run(["tar", "-x", "-C", str(before_src)], input=archive, check=True)
        sources, speakers = [], []
        for i in range(args.sources):
            path = work / f"recording{i + 1}.flac"
            speakers.append(long_recording(SPEAKERS[i % len(SPEAKERS)], args.minutes, path, seed=i))
            sources.append(path)
        sides = {}
        for side, src in (("before", before_src / "src"), ("after", ROOT / "src")):
            sides[side] = run_side(src, work / f"{side}-run", sources)
            sides[side]["dataset"] = dataset_digest(work / f"{side}-run" / "ws" / "datasets" / "bench")
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
    same = sides["before"]["dataset"] == sides["after"]["dataset"]
    files = len(sides["after"]["dataset"])
    for side in sides.values():
        side.pop("dataset")
    result = {
        "what": f"peak RSS of `dataset prepare` from {args.sources} recordings of {args.minutes:g} min "
                f"(44.1 kHz mono FLAC, real speech), Whisper stubbed out",
        "command": f"python benchmarks/dataset_prepare_memory.py --minutes {args.minutes:g} --sources {args.sources} "
                   f"--before {args.before}",
        "cpu": cpu_name(), "cores": os.cpu_count(), "speakers": speakers,
        "before_revision": args.before, "before": sides["before"], "after": sides["after"],
        "identical_outputs": same, "files_compared": files, "load_average_at_end": float(load),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]), sys.argv[3:])
    else:
        main()
