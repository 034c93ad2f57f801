"""Enrollment cost of piper-vc by stage: CPU time and wall time, for each engine and shared voice.

Times `prepare_conditioning` of `piper-vc` and `piper-vc-natural` on a voice's clips (all but the
last, as benchmarks/clone_quality.py enrolls), each enrollment in a fresh process (a first
enrollment, as `voxmith speak` makes one; `--repeat N` adds later ones in the same process). Split
into stages by the engine's progress events (a stage runs from its first event to the next
stage's first event). CPU time is the process's, all its threads (resource.getrusage). Also
counted, by wrapping the calls: Whisper passes (and the seconds of audio they heard), the base
voice's syntheses (and the seconds of speech it said: Kokoro's are the natural engine's main
cost), and Harvest's seconds of audio. The load average is recorded before and after: on a
shared machine wall time says little without it, CPU time more. Also records what the guard
chose, so a speed-up can be checked for keeping the verdicts. Appends one record per enrollment
to --out ({"records": [...]}; older records are kept).

    PYTHONPATH=src .venv/bin/python benchmarks/piper_vc_enroll_cost.py [--voices pat]
        [--engines piper-vc,piper-vc-natural] [--label NAME] [--repeat 1]
        [--out benchmarks/results/piper_vc_enroll_cost.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections import defaultdict
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


class Counts:
    """Calls and seconds of audio of the expensive steps, counted by wrapping them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values: dict = defaultdict(lambda: {"calls": 0, "audio_s": 0.0, "wall_s": 0.0})

    def wrap(self, owner, attr: str, label: str, seconds) -> None:
        original = getattr(owner, attr)

        def counted(*args, **kwargs):
            start = time.perf_counter()
            out = original(*args, **kwargs)
            with self.lock:
                got = self.values[label]
                got["calls"] += 1
                got["audio_s"] += float(seconds(args, out))
                got["wall_s"] += time.perf_counter() - start
            return out

        setattr(owner, attr, counted)


def instrument() -> Counts:
    import pyworld

    from voxmith.asr import whisper
    from voxmith.engines.piper_vc import base_voice

    counts = Counts()
    counts.wrap(whisper.Transcriber, "transcribe", "whisper passes", lambda a, out: len(a[1]) / a[2])
    counts.wrap(base_voice.BaseVoice, "speak", "joe syntheses", lambda a, out: out.samples.size / a[0].sample_rate_hz)
    counts.wrap(base_voice.KokoroBase, "speak", "kokoro syntheses",
                lambda a, out: out.samples.size / a[0].sample_rate_hz)
    counts.wrap(pyworld, "harvest", "harvest", lambda a, out: len(a[0]) / a[1])
    return counts


def enroll_one(engine_name: str, voice: str, repeat: int, label: str) -> list:
    from voxmith.audio import load_audio
    from voxmith.engines.piper_vc import base_choice, guard
    from voxmith.engines.piper_vc.engine import PiperVCEngine, PiperVCNaturalEngine

    counts = instrument()
    engine = {"piper-vc": PiperVCEngine, "piper-vc-natural": PiperVCNaturalEngine}[engine_name](device="cpu")
    files = sorted(p for p in (VOICES_DIR / voice).iterdir() if p.suffix.lower() in AUDIO_EXT)[:-1]
    clips = [load_audio(p) for p in files]
    records = []
    for attempt in range(repeat):
        marks = []  # (stage, wall, cpu) at each stage's first event
        counts.values.clear()

        def progress(event) -> None:
            if not marks or marks[-1][0] != event.stage:
                marks.append((event.stage, time.perf_counter(), cpu_s()))

        before = load()
        t0, c0 = time.perf_counter(), cpu_s()
        cond = engine.prepare_conditioning(clips, progress=progress)
        t1, c1 = time.perf_counter(), cpu_s()
        stages: dict = {}
        if marks:
            stages["(before first event)"] = {"wall_s": marks[0][1] - t0, "cpu_s": marks[0][2] - c0}
        ends = marks[1:] + [("end", t1, c1)]
        for (stage, wall, cpu), (_, wall_end, cpu_end) in zip(marks, ends):
            got = stages.setdefault(stage, {"wall_s": 0.0, "cpu_s": 0.0})
            got["wall_s"] += wall_end - wall
            got["cpu_s"] += cpu_end - cpu
        records.append({"engine": engine_name, "voice": voice, "label": label, "attempt": attempt,
                        "clips_s": float(sum(c.duration_s for c in clips)),
                        "wall_s": t1 - t0, "cpu_s": c1 - c0, "stages": stages,
                        "counts": {k: dict(v) for k, v in counts.values.items()},
                        "base_voice": base_choice.base_name(cond),
                        "rate": float(cond["rate"]), "warp": float(cond["conv.warp"]),
                        "guard": guard.summary(cond), "load_before": before, "load_after": load()})
    return records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="pat")
    ap.add_argument("--engines", default="piper-vc,piper-vc-natural")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--label", default="")
    ap.add_argument("--repeat", type=int, default=1, help="enroll each voice this many times in one process")
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)  # ENGINE:VOICE, in this process (internal)
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to measure.")
        return 0
    if args.one:
        engine_name, voice = args.one.split(":", 1)
        print(json.dumps(enroll_one(engine_name, voice, args.repeat, args.label)))
        return 0
    out = Path(args.out)
    data = json.loads(out.read_text()) if out.is_file() else {}
    if isinstance(data, list):  # the first records were a bare list
        data = {"records": data}
    data.setdefault("machine", "2 cores shared with other jobs; see load_before/load_after of each record")
    data["command"] = ("PYTHONPATH=src .venv/bin/python benchmarks/piper_vc_enroll_cost.py --voices pat "
                       "[--engines piper-vc,piper-vc-natural] [--label NAME]")
    for engine_name in [e for e in args.engines.split(",") if e]:
        for voice in [v for v in args.voices.split(",") if v]:
            # A fresh process per enrollment: the first one in a process is what `voxmith speak` pays.
            run = subprocess.run([sys.executable, __file__, "--one", f"{engine_name}:{voice}",
                                  "--repeat", str(args.repeat), "--label", args.label],
                                 capture_output=True, text=True, check=False)
            if run.returncode != 0:
                print(run.stderr[-3000:], file=sys.stderr)
                return run.returncode
            records = json.loads(run.stdout.strip().splitlines()[-1])
            for record in records:
                stages = ", ".join(f"{k} {v['wall_s']:.1f}/{v['cpu_s']:.1f}" for k, v in record["stages"].items())
                print(f"{engine_name} {voice} #{record['attempt']}: wall {record['wall_s']:.1f} s, "
                      f"CPU {record['cpu_s']:.1f} s (load {' '.join(record['load_before'])}); "
                      f"stages wall/CPU s: {stages}", flush=True)
            data.setdefault("records", []).extend(records)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
