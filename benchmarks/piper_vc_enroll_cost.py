"""Enrollment cost of piper-vc by stage: CPU time and wall time, for one or more shared voices.

Times `PiperVCEngine.prepare_conditioning` on a voice's clips (all but the last, as
benchmarks/clone_quality.py enrolls), split into stages by the engine's progress events (a stage
runs from its first event to the next stage's first event). CPU time is this process's, all its
threads, plus any finished child processes (resource.getrusage). The load average is printed
before and after: on a shared machine wall time says little without it, CPU time more. Also
prints what the guard chose (its strengths and steps), so a speed-up can be checked for keeping
the verdicts. Appends one JSON record per voice to --out.

    PYTHONPATH=src .venv/bin/python benchmarks/piper_vc_enroll_cost.py [--voices pat,tom]
        [--out benchmarks/results/piper_vc_enroll_cost.json] [--label NAME] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

VOICES_DIR = Path(os.environ.get("VOXMITH_SHARED_VOICES",
                                 Path(__file__).resolve().parents[2] / "shared" / "voices"))
RESULTS = Path(__file__).resolve().parent / "results" / "piper_vc_enroll_cost.json"
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg"}


def cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def load() -> list:
    with open("/proc/loadavg") as handle:
        return handle.read().split()[:3]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="pat")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--label", default="")
    ap.add_argument("--repeat", type=int, default=1, help="enroll each voice this many times in one process")
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to measure.")
        return 0

    from voxmith.audio import load_audio
    from voxmith.engines.piper_vc import PiperVCEngine, guard

    engine = PiperVCEngine(device="cpu")
    out = Path(args.out)
    records = json.loads(out.read_text()) if out.is_file() else []
    for name in [v for v in args.voices.split(",") if v]:
        files = sorted(p for p in (VOICES_DIR / name).iterdir() if p.suffix.lower() in AUDIO_EXT)[:-1]
        clips = [load_audio(p) for p in files]
        for attempt in range(args.repeat):
            marks = []  # (stage, wall, cpu) at each stage's first event

            def progress(event) -> None:
                if not marks or marks[-1][0] != event.stage:
                    marks.append((event.stage, time.perf_counter(), cpu_s()))

            before = load()
            t0, c0 = time.perf_counter(), cpu_s()
            cond = engine.prepare_conditioning(clips, progress=progress)
            t1, c1 = time.perf_counter(), cpu_s()
            stages: dict = {}
            ends = marks[1:] + [("end", t1, c1)]
            for (stage, wall, cpu), (_, wall_end, cpu_end) in zip(marks, ends):
                got = stages.setdefault(stage, {"wall_s": 0.0, "cpu_s": 0.0})
                got["wall_s"] += wall_end - wall
                got["cpu_s"] += cpu_end - cpu
            if marks:
                stages["(before first event)"] = {"wall_s": marks[0][1] - t0, "cpu_s": marks[0][2] - c0}
            record = {"voice": name, "label": args.label, "attempt": attempt,
                      "clips_s": float(sum(c.duration_s for c in clips)),
                      "wall_s": t1 - t0, "cpu_s": c1 - c0, "stages": stages,
                      "rate": float(cond["rate"]), "warp": float(cond["conv.warp"]),
                      "guard": guard.summary(cond), "load_before": before, "load_after": load()}
            records.append(record)
            print(json.dumps(record), flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
