"""Speed of voxmith's GPT-SoVITS GPT (t2s) against the official code, on the CPU, at full (v2) size.

Both sides generate semantic codes for the same inputs with the same random weights (the v2 layout:
24 layers, d 512, 16 heads, 77.5M parameters) and the official default sampling (top_k 15, top_p 1,
temperature 1, repetition penalty 1.35), batch 1, as the official TTS runs each sentence:
* ours: `generate_semantic` (t2s_generate.py), in this interpreter's venv;
* official: `Text2SemanticDecoder.infer_panel` (the naive kv-cache loop) at GPT-SoVITS 48b1a01, in the
  reference venv (`--ref-python`, PYTHONPATH=`--ref-src`).

Inputs: `--phones` phone ids (reference transcript + text; English, so BERT features are zeros) and
`--prompt` reference codes (25 Hz: 150 = a 6 s reference). Length: the shared weights make EOS
impossible (a large constant channel in the last layer's output bias, the EOS row of the head reading
it negatively), so both sides run to `early_stop_num` and make exactly `--codes` codes; the codes of the
two sides are compared (same seed: they must be equal, a full-size check of the golden tests' claim).

Per measurement one process per side (only one model in memory); sides alternate and so does which one
goes first; `--reps` repetitions; torch uses `--threads` threads on both sides. Timed: a 1-code call
(prompt pass + one step) and a `--codes` call; per-step decode = (long - short) / (codes - 1);
tokens/s = codes / long call. Reported: median and best per side, official/ours ratios (> 1: voxmith
faster), /proc/loadavg around each run and the CPU (voxmith's `cpu_info()`). `--candidates N` times
instead N takes of one sentence made together (`generate_semantic_candidates`, fp32) against one take.

    .venv/bin/python benchmarks/gpt_sovits_t2s_speed.py            # 3 reps, 150 codes
    .venv/bin/python benchmarks/gpt_sovits_t2s_speed.py --reps 5 --codes 300
    .venv/bin/python benchmarks/gpt_sovits_t2s_speed.py --candidates 4   # adds the `candidates` row

Results: benchmarks/results/gpt_sovits_t2s_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
KEYS = REPO / "tests" / "fixtures" / "gpt_sovits" / "keys" / "keys_t2s_v2.json"
RESULT = HERE / "results" / "gpt_sovits_t2s_speed.json"
SEED = 2024
SAMPLE_SEED = 5
SETTINGS = dict(top_k=15, top_p=1.0, temperature=1.0, repetition_penalty=1.35)
NO_EOS_CHANNEL, NO_EOS_BIAS = 0, 50.0


# ----------------------------------------------------------------------------- shared state
def make_state(path: Path, phones: int, prompt: int) -> None:
    """Random full-size v2 weights (official key names, `model.` prefix removed) and inputs."""
    sys.path.insert(0, str(REPO))
    from tests.fixtures.tortoise.golden import randomized_state

    dumped = json.loads(KEYS.read_text())
    empty = {k[len("model."):]: torch.zeros(shape) for k, shape in dumped["keys"].items()}
    state = randomized_state(empty, SEED, std=0.02)
    layers = dumped["config"]["n_layer"]
    state["ar_text_position.alpha"] = torch.ones(1)
    state["ar_audio_position.alpha"] = torch.ones(1)
    state[f"h.layers.{layers - 1}.norm2.bias"][NO_EOS_CHANNEL] = NO_EOS_BIAS
    eos_row = torch.zeros(dumped["config"]["hidden_dim"])
    eos_row[NO_EOS_CHANNEL] = -NO_EOS_BIAS
    state["ar_predict_layer.weight"][dumped["config"]["EOS"]] = eos_row
    g = torch.Generator().manual_seed(SEED + 1)
    inputs = {"phones": torch.randint(0, dumped["config"]["phoneme_vocab_size"], (phones,), generator=g),
              "bert": torch.zeros(1024, phones), "prompt": torch.randint(0, 1024, (prompt,), generator=g)}
    torch.save({"state": state, "inputs": inputs, "config": dumped["config"]}, path)


# ----------------------------------------------------------------------------- one side
def load_ours(data: dict):
    from voxmith.engines.gpt_sovits.t2s import T2SConfig, Text2SemanticModel

    model = Text2SemanticModel(T2SConfig.from_official({"model": data["config"]}))
    model.load_state_dict(data["state"], strict=True)
    return model.eval()


def run_quality(state_path: Path, codes: int, threads: int, precisions: list) -> dict:
    """Teacher-forced next-code distributions of each reduced precision against fp32 along the fp32
    model's own sampled codes (temperature 1, as the default sampling), and the first step where a
    same-seed sample differs."""
    from voxmith.engines.gpt_sovits.sampling import SamplingSettings
    from voxmith.engines.gpt_sovits.t2s_generate import generate_semantic
    from voxmith.engines.gpt_sovits.t2s_precision import t2s_decoder_for
    from voxmith.engines.precision import logit_agreement

    torch.set_num_threads(threads)
    data = torch.load(state_path, map_location="cpu", weights_only=True)
    inputs = data["inputs"]
    model = load_ours(data)
    settings = SamplingSettings(**SETTINGS)

    def sample(m):
        return generate_semantic(m, inputs["phones"], inputs["bert"], inputs["prompt"], settings,
                                 torch.Generator().manual_seed(SAMPLE_SEED), early_stop_num=codes)

    reference_codes = sample(model)
    sequence = torch.cat([inputs["prompt"], reference_codes]).view(1, -1)
    prompt = inputs["prompt"].numel()
    with torch.no_grad():
        reference = model(inputs["phones"].view(1, -1), inputs["bert"].unsqueeze(0), sequence)[0, prompt:-1]
    out = {}
    for precision in precisions:
        view = t2s_decoder_for(model, precision)
        with torch.no_grad():
            logits = view(inputs["phones"].view(1, -1), inputs["bert"].unsqueeze(0), sequence)[0, prompt:-1]
        row = logit_agreement(reference, logits, temperature=1.0, top_p=1.0)
        row.pop("nucleus_mass_ratio", None)  # top_p 1: always 1
        same = sample(view)
        differs = [i for i, (a, b) in enumerate(zip(same.tolist(), reference_codes.tolist())) if a != b]
        row["first_differing_code_same_seed"] = differs[0] if differs else None
        out[precision] = row
    return out


def run_side(side: str, state_path: Path, codes: int, threads: int, precision: str = "float32",
             takes: int = 1) -> dict:
    torch.set_num_threads(threads)
    data = torch.load(state_path, map_location="cpu", weights_only=True)
    inputs = data["inputs"]
    if side == "ours":
        from voxmith.engines.gpt_sovits.sampling import SamplingSettings
        from voxmith.engines.gpt_sovits.t2s_generate import generate_semantic_candidates
        from voxmith.engines.gpt_sovits.t2s_precision import t2s_decoder_for

        model = t2s_decoder_for(load_ours(data), precision)
        settings = SamplingSettings(**SETTINGS)

        def generate(n: int) -> torch.Tensor:
            generators = [torch.Generator().manual_seed(SAMPLE_SEED + i) for i in range(takes)]
            return generate_semantic_candidates(model, inputs["phones"], inputs["bert"], inputs["prompt"], settings,
                                                generators, early_stop_num=n)[0]
    else:
        os.environ["TQDM_DISABLE"] = "1"
        from AR.models.t2s_model import Text2SemanticDecoder

        model = Text2SemanticDecoder({"model": data["config"]}, top_k=3)
        model.load_state_dict(data["state"], strict=True)
        model.eval()

        def generate(n: int) -> torch.Tensor:
            torch.manual_seed(SAMPLE_SEED)
            y, idx = model.infer_panel(inputs["phones"].view(1, -1), torch.tensor([inputs["phones"].numel()]),
                                       inputs["prompt"].view(1, -1), inputs["bert"].unsqueeze(0),
                                       early_stop_num=n, **SETTINGS)
            return y[0, -idx:]

    timings = {}
    with torch.no_grad():
        generate(1)  # warm-up (allocator, one-off kernels)
        for name, n in (("short", 1), ("long", codes)):
            start, start_cpu = time.perf_counter(), time.process_time()
            out = generate(n)
            timings[name] = time.perf_counter() - start
            timings[f"{name}_cpu"] = time.process_time() - start_cpu
            timings[f"{name}_codes"] = out.tolist()
    return timings


# ----------------------------------------------------------------------------- driver
def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def measure(side: str, args, state_path: Path) -> dict:
    """side: "official", "ours" (fp32) or "ours-<precision>"."""
    env = dict(os.environ)
    worker, _, variant = side.partition("-")
    takes = int(variant[1:]) if variant.startswith("x") else 1
    precision = "float32" if takes > 1 else (variant or "float32")
    cmd = [sys.executable if worker != "official" else args.ref_python, __file__, "--worker", worker,
           "--state", str(state_path), "--codes", str(args.codes), "--threads", str(args.threads),
           "--precision", precision, "--takes", str(takes)]
    if worker == "official":
        env["PYTHONPATH"] = args.ref_src
    else:
        env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    before = loadavg()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{side} worker failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["loadavg_before"], result["loadavg_after"] = before, loadavg()
    return result


def summarize(runs: dict, codes: int) -> dict:
    """Per side, wall-clock and CPU-time (process time: what the run itself computed, much less
    disturbed by other users of a shared machine; equal to wall time at 1 thread on an idle one)."""
    out = {}
    for side, items in runs.items():
        row = {}
        for clock, suffix in (("wall", ""), ("cpu", "_cpu")):
            steps = [(r["long" + suffix] - r["short" + suffix]) / (codes - 1) * 1000 for r in items]
            tps = [codes / r["long" + suffix] for r in items]
            row[clock] = {"decode_ms_per_step_median": statistics.median(steps), "decode_ms_per_step_best": min(steps),
                          "tokens_per_s_median": statistics.median(tps), "tokens_per_s_best": max(tps),
                          "prompt_pass_plus_one_step_ms_median": statistics.median(r["short" + suffix] * 1000
                                                                                   for r in items)}
        out[side] = row
    ratios = {}
    for side in runs:
        if side == "official":
            continue
        for clock in ("wall", "cpu"):
            o, v = out["official"][clock], out[side][clock]
            ratios[f"{side}_{clock}"] = {
                "decode_step_median": o["decode_ms_per_step_median"] / v["decode_ms_per_step_median"],
                "decode_step_best": o["decode_ms_per_step_best"] / v["decode_ms_per_step_best"],
                "tokens_per_s_median": v["tokens_per_s_median"] / o["tokens_per_s_median"],
                "prompt_pass_median": o["prompt_pass_plus_one_step_ms_median"] / v["prompt_pass_plus_one_step_ms_median"],
            }
    out["ratio_official_over_ours"] = ratios
    return out


def time_candidates(args) -> None:
    """One take vs `--candidates` takes in one batch; per-take cost in CPU time and wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        state_path = Path(tmp) / "t2s_state.pt"
        make_state(state_path, args.phones, args.prompt)
        sides = ["ours", f"ours-x{args.candidates}"]
        runs = {side: [] for side in sides}
        for rep in range(args.reps):
            for side in (sides if rep % 2 == 0 else sides[::-1]):
                runs[side].append(measure(side, args, state_path))
                r = runs[side][-1]
                print(f"rep {rep} {side}: long {r['long']:.2f} s (cpu {r['long_cpu']:.2f} s)", flush=True)
    row = {"command": "python benchmarks/gpt_sovits_t2s_speed.py " + " ".join(sys.argv[1:]),
           "takes": args.candidates, "codes": args.codes, "threads": args.threads, "reps": args.reps}
    for clock, key in (("wall", "long"), ("cpu", "long_cpu")):
        one = statistics.median(r[key] for r in runs["ours"])
        batch = statistics.median(r[key] for r in runs[sides[1]])
        row[clock] = {"one_take_s_median": one, f"{args.candidates}_takes_s_median": batch,
                      "per_take_speedup": one * args.candidates / batch}
    row["loadavg"] = [r["loadavg_before"] for side in sides for r in runs[side]]
    path = Path(args.output)
    result = json.loads(path.read_text()) if path.exists() else {}
    result["candidates"] = row
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(row, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["ours", "official", "quality"])
    parser.add_argument("--state")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--codes", type=int, default=150)
    parser.add_argument("--phones", type=int, default=60)
    parser.add_argument("--prompt", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ref-python", default="/tmp/gsv_ref/venv/bin/python")
    parser.add_argument("--ref-src", default="/tmp/gsv_ref/GPT-SoVITS/GPT_SoVITS")
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)  # worker only
    parser.add_argument("--takes", type=int, default=1, help=argparse.SUPPRESS)  # worker only
    parser.add_argument("--candidates", type=int, default=0,
                        help="instead: time N takes in one batch (generate_semantic_candidates) against one "
                             "take, fp32, ours only, and add the row `candidates` to the existing results")
    parser.add_argument("--precisions", default="int8,bfloat16",
                        help="our reduced precisions to time too (against official fp32), comma-separated")
    parser.add_argument("--output", default=str(RESULT))
    args = parser.parse_args()
    if args.worker == "quality":
        print(json.dumps(run_quality(Path(args.state), args.codes, args.threads, args.precisions.split(","))))
        return
    if args.worker:
        print(json.dumps(run_side(args.worker, Path(args.state), args.codes, args.threads, args.precision,
                                  args.takes)))
        return
    if args.candidates:
        return time_candidates(args)
    precisions = [p for p in args.precisions.split(",") if p]

    from voxmith.engines.device import cpu_info

    with tempfile.TemporaryDirectory() as tmp:
        state_path = Path(tmp) / "t2s_state.pt"
        make_state(state_path, args.phones, args.prompt)
        sides = ["ours", "official"] + [f"ours-{p}" for p in precisions]
        runs = {side: [] for side in sides}
        for rep in range(args.reps):
            order = sides if rep % 2 == 0 else sides[::-1]
            for side in order:
                runs[side].append(measure(side, args, state_path))
                r = runs[side][-1]
                print(f"rep {rep} {side}: short {r['short']:.2f} s, long {r['long']:.2f} s "
                      f"(cpu {r['short_cpu']:.2f} / {r['long_cpu']:.2f} s)", flush=True)
        quality = {}
        if precisions:
            env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
            proc = subprocess.run([sys.executable, __file__, "--worker", "quality", "--state", str(state_path),
                                   "--codes", str(args.codes), "--threads", str(args.threads),
                                   "--precisions", ",".join(precisions)],
                                  env=env, capture_output=True, text=True, check=True)
            quality = json.loads(proc.stdout.strip().splitlines()[-1])
    fp32_sides = ("ours", "official")
    same = all(r["long_codes"] == runs["ours"][0]["long_codes"] for side in fp32_sides for r in runs[side])
    lengths = {len(r["long_codes"]) for side in runs for r in runs[side]}
    info = cpu_info()
    result = {
        "what": "GPT-SoVITS t2s (v2 size, random weights) sampling at batch 1, ours vs official 48b1a01, CPU fp32",
        "command": "python benchmarks/gpt_sovits_t2s_speed.py " + " ".join(sys.argv[1:]),
        "cpu": info.__dict__ if hasattr(info, "__dict__") else str(info),
        "torch": torch.__version__, "threads": args.threads, "reps": args.reps, "codes": args.codes,
        "phones": args.phones, "prompt_codes": args.prompt, "sampling": SETTINGS,
        "same_codes_both_sides_fp32": same, "code_lengths": sorted(lengths),
        "summary": summarize(runs, args.codes),
        "quality_vs_our_fp32": quality,
        "runs": {side: [{k: v for k, v in r.items() if not k.endswith("_codes")} for r in items]
                 for side, items in runs.items()},
    }
    Path(args.output).write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps({"summary": result["summary"], "quality": quality}, indent=1))
    print("same fp32 codes on both sides:", same, "lengths:", sorted(lengths))


if __name__ == "__main__":
    main()
