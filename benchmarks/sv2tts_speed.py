"""Speed of voxmith's SV2TTS models against the official Real-Time-Voice-Cloning code, on the CPU, at full size.

Both sides get the same random full-size weights (tests/fixtures/sv2tts/golden.randomized_state on the
official key names; the synthesizer's stop bias lowered so that both generate exactly the same number of
frames) and the same inputs, and do the same work; the outputs are compared as a check:

* encoder: embedding of 6 s of the demo clip (1.6 s windows, half overlap);
* tacotron: one sentence, 100 frames (50 decoder steps), pre-net dropout from the same seed;
* wavernn: batched generation of 110 frames in 10 folds of 2000 + 2 x 200 samples (the batch of 10 a
  5 s sentence has with the official 8000 + 2 x 800, in a quarter of the steps), the same seed.

Each measurement runs in its own process (`sv2tts_speed_worker.py`): voxmith's side in this
interpreter, the official side in the reference venv (`--ref-python`, default /tmp/rtvc_ref/venv/bin/python,
with PYTHONPATH=--ref-src). Sides alternate (which goes first alternates too), each is repeated `--reps`
times with `--threads` torch threads; the table gives medians and best runs with official/ours ratios
(> 1: voxmith is faster). The machine may be shared: /proc/loadavg is recorded with every measurement,
and the best-of-n ratio is the steadier figure under load.

    .venv/bin/python benchmarks/sv2tts_speed.py            # results: benchmarks/results/sv2tts_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "sv2tts"))
WORKER = HERE / "sv2tts_speed_worker.py"
RESULTS = HERE / "results" / "sv2tts_speed.json"
TASKS = ("encoder", "tacotron", "wavernn")
SEEDS = {"encoder.pt": 101, "synthesizer.pt": 102, "vocoder.pt": 103}


def write_state(folder: Path) -> None:
    """The shared weights and inputs, at the official sizes, in the official checkpoint layout."""
    from golden import randomized_state

    from voxmith.engines.sv2tts.hparams import EncoderConfig, TacotronConfig, WaveRNNConfig
    from voxmith.engines.sv2tts.speaker_encoder import SpeakerEncoder
    from voxmith.engines.sv2tts.tacotron import Tacotron
    from voxmith.engines.sv2tts.wavernn import WaveRNN

    for name, module in (("encoder.pt", SpeakerEncoder(EncoderConfig())), ("synthesizer.pt", Tacotron(TacotronConfig())),
                         ("vocoder.pt", WaveRNN(WaveRNNConfig()))):
        state = randomized_state(module.state_dict(), SEEDS[name], std=0.05)
        if name == "synthesizer.pt":
            state["decoder.stop_proj.bias"] = state["decoder.stop_proj.bias"] - 1e4  # never stops early
        torch.save({"model_state": state}, folder / name)
    rng = np.random.default_rng(5)
    embedding = np.abs(rng.standard_normal(256)).astype(np.float32)
    np.save(folder / "embedding.npy", embedding / np.linalg.norm(embedding))
    np.save(folder / "mels.npy", rng.uniform(-1, 1, (1, 80, 110)).astype(np.float32))


def measure(side: str, task: str, state: Path, args) -> dict:
    env = dict(os.environ)
    if side == "official":
        python, env["PYTHONPATH"] = str(args.ref_python), str(args.ref_src)
    else:
        python, env["PYTHONPATH"] = sys.executable, str(ROOT / "src")
    load_before = Path("/proc/loadavg").read_text().split()[0]
    done = subprocess.run([python, str(WORKER), "--side", side, "--task", task, "--state-dir", str(state),
                           "--threads", str(args.threads)], env=env, capture_output=True, text=True, cwd=str(ROOT))
    if done.returncode != 0:
        raise SystemExit(f"{side} {task} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(load_before=float(load_before), load_after=float(Path("/proc/loadavg").read_text().split()[0]))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--ref-python", type=Path, default=Path("/tmp/rtvc_ref/venv/bin/python"))
    parser.add_argument("--ref-src", type=Path, default=Path("/tmp/rtvc_ref/Real-Time-Voice-Cloning"))
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    runs: dict = {t: {"ours": [], "official": []} for t in tasks}
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        write_state(state)
        for rep in range(args.reps):
            for task in tasks:
                sides = ("ours", "official") if (rep + tasks.index(task)) % 2 == 0 else ("official", "ours")
                for side in sides:
                    runs[task][side].append(measure(side, task, state, args))
                    print(task, side, f"{runs[task][side][-1]['seconds']:.3f} s", flush=True)
    from voxmith.engines.device import cpu_info

    table = {}
    for task in tasks:
        ours = [r["seconds"] for r in runs[task]["ours"]]
        official = [r["seconds"] for r in runs[task]["official"]]
        a, b = runs[task]["ours"][0], runs[task]["official"][0]
        same = a["shape"] == b["shape"] and abs(a["checksum"] - b["checksum"]) <= 1e-4 * max(1.0, abs(b["checksum"]))
        table[task] = {"ours_median_s": statistics.median(ours), "official_median_s": statistics.median(official),
                       "ours_best_s": min(ours), "official_best_s": min(official),
                       "ratio_median": statistics.median(official) / statistics.median(ours),
                       "ratio_best": min(official) / min(ours), "same_output": bool(same),
                       "output_shape": a["shape"], "max_head_diff": float(np.max(np.abs(np.subtract(a["head"], b["head"]))))}
    info = cpu_info()
    out = {"command": "benchmarks/sv2tts_speed.py " + " ".join(sys.argv[1:]), "reps": args.reps,
           "threads": args.threads, "cpu": getattr(info, "name", str(info)), "machine": platform.machine(),
           "torch": torch.__version__, "results": table, "runs": runs,
           "note": "ratio = official / ours (> 1: voxmith faster); the machine was shared: see load_before/after"}
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    for task, row in table.items():
        print(f"{task:9s} ours {row['ours_median_s']:.3f} s  official {row['official_median_s']:.3f} s  "
              f"ratio median {row['ratio_median']:.2f} best {row['ratio_best']:.2f}  same output: {row['same_output']}")


if __name__ == "__main__":
    main()
