"""CPU cost of piper-vc synthesis under different settings, all in one process.

CPU seconds (`time.process_time`, every thread of the process) per second of speech, for each
settings row, on one or more enrolled conditionings (npz files, e.g. those
`benchmarks/clone_quality.py --cond-dir DIR` keeps). The rows are interleaved sentence by
sentence and round by round, so a change in the machine's load hits them alike; CPU time is what
load moves least (wall time on a shared machine says nothing). One untimed warm-up per row.

    PYTHONPATH=src .venv/bin/python benchmarks/piper_vc_synth_cpu.py COND.npz [COND2.npz ...]
        --config '{}' --config '{"noise_scale": 0.667}' [--rounds 3] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

# Not the benchmark's or the guard's sentences; plain narration of ordinary lengths.
SENTENCES = [
    "The farmer counted his sheep twice before he locked the gate for the night.",
    "A letter from her brother arrived on Friday, three weeks after he had sent it.",
    "We walked along the river until the lights of the town came into view.",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("conditionings", nargs="+")
    ap.add_argument("--config", action="append", default=[], metavar="JSON")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    from voxmith.engines.piper_vc import PiperVCEngine

    engine = PiperVCEngine(device="cpu")
    configs = [json.loads(c) for c in args.config] or [{}]
    conds = [dict(np.load(p)) for p in args.conditionings]
    settings = [engine.settings_class.from_dict({**engine.settings_class().to_dict(), **c}) for c in configs]
    cpu = np.zeros(len(configs))
    speech = np.zeros(len(configs))
    for s in settings:  # warm-up: sessions, matrices, caches
        engine.synthesize("Warm up.", conds[0], s, seed=0)
    for r in range(args.rounds):
        for cond in conds:
            for k, text in enumerate(SENTENCES):
                for i, s in enumerate(settings):
                    t = time.process_time()
                    cand = engine.synthesize(text, cond, s, seed=k + 100 * r)[0]
                    cpu[i] += time.process_time() - t
                    speech[i] += cand.duration_s
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    rows = [{"settings": c, "cpu_s_per_speech_s": float(cpu[i] / speech[i]), "speech_s": float(speech[i])}
            for i, c in enumerate(configs)]
    for row in rows:
        print(f"{json.dumps(row['settings']):50s} CPU-s per s of speech {row['cpu_s_per_speech_s']:.3f} "
              f"({row['speech_s']:.0f} s of speech)")
    print(f"load average: {' '.join(load)} (2 cores)")
    if args.out:
        Path(args.out).write_text(json.dumps({"conditionings": args.conditionings, "rounds": args.rounds,
                                              "sentences": SENTENCES, "rows": rows, "load_average": load},
                                             indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
