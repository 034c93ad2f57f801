"""Speed of voxmith's TorToiSe modules against the official tortoise-tts 3.0.0, on the CPU, at full size.

Both sides run in the same benchmark, with identical random weights and inputs, at the official model
sizes (AR 421.5M, diffusion 292.3M, CLVP 243.8M, vocoder 14.9M parameters):

* autoregressive sampling with the kv-cache at the lengths TorToiSe really generates (`--ar-shapes`,
  default 1x200 and 16x100: batch 1 at a sentence's ~200 codes, the presets' batch of 16 at 100 codes;
  `num_return_sequences` as api.py's `autoregressive_batch_size`), api.py's settings (temperature .8,
  top_p .8, repetition penalty 2.0, HF's default top_k 50 on both sides); the length is fixed by a -1e4
  bias on the stop logit in the shared weights plus `max_generate_length` (see the worker's docstring).
  Three rows per shape: the prompt pass (a 1-code call: the prompt through all layers plus one draw;
  the official `generate` runs it for every row of the batch, voxmith once), the per-step decode
  ((N-code call - 1-code call) / (N - 1), in ms per step for the whole batch) and tokens/s over the
  whole N-code call;
* one diffusion p_sample step at 174 frames (40 AR latents) with conditioning-free guidance, i.e. two
  DiffusionTts forwards (plus the once-per-clip conditioning and `timestep_independent`, timed once);
* CLVP scoring of 16 candidates (25 text tokens + the trailing 0, 500 codes);
* the vocoder on 100 mel frames;
* voxmith's AR sampling again with reduced-precision copies of the same weights (`--ar-precisions`,
  default int8,bfloat16; see src/voxmith/engines/tortoise/precision.py) at the same shapes. The
  official code has fp32 only, so those rows compare voxmith at that precision with official fp32
  ("ar_step_b1_int8": voxmith int8 vs official fp32); the fp32 rows (same precision on both sides) are
  the headline. Building those copies is a one-off ("ar_convert_*", voxmith only), paid on the first
  synthesis after the AR weights are loaded or swapped, not per sentence;
* an END-TO-END ESTIMATE of one sentence (`--sentence-codes`, 200) with the ultra_fast and fast presets
  per side, added up from the measured parts (see `estimate_presets`): timing a preset as a whole on
  the CPU takes tens of minutes per side;
* `ar_quality` (voxmith only, once): how closely each reduced precision follows voxmith's fp32 model
  on these weights (teacher-forced next-code logits along fp32-sampled rows: top-1 agreement, KL,
  nucleus mass; the step where a same-seed sample first differs). `--ar-checkpoint autoregressive.pth`
  runs it on the real weights instead (`--tasks ar_quality --update` keeps the other rows).

How: `benchmarks/tortoise_speed_worker.py` does the work in one process per (model, side, repetition):
voxmith's side in this interpreter, the official side in the reference venv
(`--ref-python`, default /tmp/tortoise_ref/venv/bin/python, with PYTHONPATH=--ref-src). So only one
side's model is in memory at a time. The shared weights are made once (`randomized_state` with a fixed
seed per model, from tests/fixtures/tortoise/golden.py) and saved to a temporary folder both sides load.
The machine is shared and noisy: sides alternate per measurement (which one goes first alternates too),
each measurement is repeated `--reps` times, torch uses `--threads` (2) threads on both sides, and the
table reports medians and best runs per side with official/ours ratios (> 1: voxmith is faster). Other
users' load only ever slows a run down (a 2-thread OpenMP team with a descheduled thread can lose 10x),
so on a shared machine the best-of-n ratio is the steadier one. /proc/loadavg before and after each
measurement is recorded, and the results name the CPU and its VNNI/BF16/AMX features (voxmith's
`cpu_info()`): reduced-precision speed depends on them, so figures from another CPU do not carry over. Outputs (sampled codes, diffusion and vocoder checksums, CLVP scores) are
compared between the sides as a check that both did the same work.

    .venv/bin/python benchmarks/tortoise_speed.py                 # default: 3 reps (CLVP 2), 1x200 and 16x100
    .venv/bin/python benchmarks/tortoise_speed.py --reps 5 --tasks autoregressive --state-dir /tmp/w  # keep weights
    .venv/bin/python benchmarks/tortoise_speed.py --tasks diffusion,clvp,vocoder,ar_quality --update  # the other rows

Results: benchmarks/results/tortoise_speed.json. With CUDA and voxmith's pipeline.py the script also
times the `ultra_fast` and `fast` presets end to end on both sides (`--presets`); without them that part
is skipped with a message.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "tortoise_speed_worker.py"
RESULTS = HERE / "results" / "tortoise_speed.json"
REF_PYTHON = Path("/tmp/tortoise_ref/venv/bin/python")
REF_SRC = Path("/tmp/tortoise_ref/tortoise-tts-3.0.0")
TASKS = ("autoregressive", "diffusion", "clvp", "vocoder", "ar_quality")
OURS_ONLY_TASKS = ("ar_quality",)
SIDES = ("ours", "official")

PRECISIONS = ("int8", "bfloat16")
PRECISION_LABELS = {"int8": "int8", "bfloat16": "bf16"}

# ultra_fast and fast as api.py runs them (16 / 96 AR samples in batches of 16, 30 / 80 diffusion
# steps with conditioning-free guidance, one candidate), for the end-to-end estimate.
PRESET_SHAPES = {"ultra_fast": (16, 30), "fast": (96, 80)}


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """'1x200,16x100' -> [(rows, codes), ...]."""
    shapes = []
    for part in text.split(","):
        rows, _, codes = part.partition("x")
        if not rows.isdigit() or not codes.isdigit() or int(codes) < 2:
            raise argparse.ArgumentTypeError(f"AR shape {part!r}: use ROWSxCODES with CODES >= 2, e.g. 16x100")
        shapes.append((int(rows), int(codes)))
    return shapes


def table_rows(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(metric, unit, label) in table order; 'tok/s' rows are rates (bigger is better), the others times."""
    rows = [("ar_conditioning", "s", "AR get_conditioning, 2 clips x 517 frames")]
    for precision in ["float32"] + list(args.ar_precisions):
        suffix = "" if precision == "float32" else f"_{precision}"
        versus = "" if precision == "float32" else f", voxmith {PRECISION_LABELS[precision]} vs official fp32"
        for batch, codes in args.ar_shapes:
            rows += [(f"ar_prefill_b{batch}{suffix}", "s", f"AR prompt pass (1st code), batch {batch}{versus}"),
                     (f"ar_step_b{batch}{suffix}", "ms", f"AR decode, per step, batch {batch}, {codes} codes{versus}"),
                     (f"ar_b{batch}{suffix}", "tok/s", f"AR sampling, batch {batch} x {codes} codes{versus}")]
    rows += [(f"ar_convert_{p}", "s", f"one-off: fp32 -> {PRECISION_LABELS[p]} AR decoder (voxmith only)")
             for p in args.ar_precisions]
    return rows + [
        ("diffusion_conditioning", "s", "diffusion get_conditioning (401 frames)"),
        ("diffusion_timestep_independent", "s", "diffusion timestep_independent (40 latents)"),
        ("diffusion_step", "s", "diffusion p_sample step, 174 frames, 2 forwards"),
        ("clvp_score", "s", "CLVP scoring, 16 candidates x 500 codes"),
        ("vocoder", "s", "vocoder, 100 mel frames"),
    ]


def cpu_description() -> dict:
    """The CPU and the features that decide reduced-precision speed (VNNI, BF16, AMX), plus torch's
    dispatch level: figures from another CPU are not comparable."""
    import torch

    from voxmith.engines.device import cpu_info
    from voxmith.engines.tortoise.precision import auto_cpu_precision, int8_supported

    info = cpu_info()
    choice, why = auto_cpu_precision(info, int8_supported())
    return dict(info.to_dict(), summary=info.summary(), torch=torch.__version__,
                torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
                ar_precision_auto=choice, ar_precision_auto_reason=why)


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages (other users of the machine slow the runs down)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def worker_command(side: str, args: argparse.Namespace) -> tuple[list[str], dict]:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if side == "ours":
        return [sys.executable, str(WORKER)], env
    env["PYTHONPATH"] = str(args.ref_src)
    return [str(args.ref_python), str(WORKER)], env


def run_worker(side: str, task: str, args: argparse.Namespace, extra: list[str] | None = None) -> dict:
    command, env = worker_command(side, args)
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result = Path(handle.name)
    command += ["--side", side, "--task", task, "--state-dir", str(args.state_dir), "--result", str(result),
                "--ar-shapes", ",".join(f"{b}x{c}" for b, c in args.ar_shapes),
                "--threads", str(args.threads), "--inner", str(args.inner)] + (extra or [])
    if side == "ours":
        command += ["--ar-precisions", ",".join(args.ar_precisions)]
        if args.ar_checkpoint and task == "ar_quality":
            command += ["--ar-checkpoint", str(args.ar_checkpoint)]
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        result.unlink(missing_ok=True)
        raise RuntimeError(f"{side} {task} worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(result.read_text())
    result.unlink()
    out.setdefault("_meta", {})["process_wall_s"] = wall
    return out


def value_of(entry: dict, unit: str) -> float:
    return entry[{"tok/s": "tokens_per_s", "ms": "median_ms"}.get(unit, "median_s")]


def measure(args: argparse.Namespace) -> tuple[dict, list]:
    """samples[metric][side] = one value per repetition; log = every worker result in run order."""
    samples: dict = {}
    log = []
    rows = table_rows(args)
    # Every worker's result is also kept in <out>.partial.json as it comes, so that an interrupted run
    # (the machine is shared, runs take long) can go on with --resume instead of starting over.
    partial = args.out.with_suffix(".partial.json")
    done = {}
    if args.resume:
        done = {(o["_meta"]["task"], o["_meta"]["rep"], o["_meta"]["side"]): o
                for o in json.loads(args.resume.read_text())}
    for task in args.tasks:
        reps = 1 if task in OURS_ONLY_TASKS else min(args.reps, args.clvp_reps) if task == "clvp" else args.reps
        for rep in range(reps):
            order = ("ours",) if task in OURS_ONLY_TASKS else SIDES if rep % 2 == 0 else SIDES[::-1]
            for side in order:
                if (task, rep, side) in done:  # --resume: measured by an interrupted run
                    out = done[(task, rep, side)]
                    load = out["_meta"].get("loadavg_before", "?")
                else:
                    load = loadavg()
                    out = run_worker(side, task, args)
                    out["_meta"].update(rep=rep, loadavg_before=load, loadavg_after=loadavg())
                log.append(out)
                partial.write_text(json.dumps(log))
                for metric, unit, _ in rows:
                    if metric in out:
                        samples.setdefault(metric, {}).setdefault(side, []).append(value_of(out[metric], unit))
                print(f"  {task:15s} rep {rep} {side:8s} {out['_meta']['process_wall_s']:6.1f} s  "
                      f"(load {load} -> {out['_meta']['loadavg_after']}) " + ", ".join(
                          f"{m}={value_of(out[m], u):.3g}{u}" for m, u, _ in rows if m in out), flush=True)
    return samples, log


def reference_metric(metric: str) -> str:
    """The official metric a voxmith metric is compared with: official has fp32 only, so voxmith's
    reduced-precision AR rows (ar_step_b1_int8, ...) compare with official's fp32 row (ar_step_b1)."""
    for precision in PRECISIONS:
        if metric.startswith("ar_") and not metric.startswith("ar_convert") and metric.endswith(f"_{precision}"):
            return metric[:-len(precision) - 1]
    return metric


def summarise(samples: dict, rows: list) -> dict:
    table = {}
    for metric, unit, label in rows:
        reference = reference_metric(metric)
        if "ours" not in samples.get(metric, {}):
            continue
        ours_samples = samples[metric]["ours"]
        if "official" not in samples.get(reference, {}):  # voxmith-only rows (one-off conversions)
            table[metric] = {"label": label, "unit": unit, "ours": statistics.median(ours_samples),
                             "ours_best": min(ours_samples), "samples": {"ours": ours_samples}}
            continue
        official_samples = samples[reference]["official"]
        ours, official = statistics.median(ours_samples), statistics.median(official_samples)
        # Best run per side: other users' load only ever slows a run down, so on a shared machine the
        # best of n is the steadier estimate; both are reported.
        pick = max if unit == "tok/s" else min
        ours_best, official_best = pick(ours_samples), pick(official_samples)
        # Ratio > 1 means voxmith is faster, for times and for rates alike.
        def speedup(o: float, ref: float) -> float:
            return o / ref if unit == "tok/s" else ref / o
        table[metric] = {"label": label, "unit": unit, "ours": ours, "official": official,
                         "speedup_ours_vs_official": speedup(ours, official),
                         "ours_best": ours_best, "official_best": official_best,
                         "speedup_best": speedup(ours_best, official_best),
                         "samples": {"ours": ours_samples, "official": official_samples}}
        if reference != metric:
            table[metric]["official_metric"] = reference
    return table


def same_work_checks(log: list) -> dict:
    """Compare what both sides produced (first result of each side per metric)."""
    first: dict = {}
    for out in log:
        side = out["_meta"]["side"]
        for metric, entry in out.items():
            if not metric.startswith("_") and isinstance(entry, dict):
                first.setdefault(metric, {}).setdefault(side, entry)
    checks = {}
    for metric, by_side in first.items():
        if len(by_side) != 2:
            continue
        a, b = by_side["ours"], by_side["official"]
        if "codes_head" in a:
            checks[metric] = {"codes_identical": a["codes_head"] == b["codes_head"]}
        elif "checksum" in a:
            head = zip(a.get("head", [0]), b.get("head", [0]))
            checks[metric] = {"checksum_ours": a["checksum"], "checksum_official": b["checksum"],
                              "max_abs_diff_head": max(abs(x - y) for x, y in head)}
        elif "scores" in a:
            checks[metric] = {"max_abs_score_diff": max(abs(x - y) for x, y in zip(a["scores"], b["scores"]))}
    return checks


def presets_cuda(args: argparse.Namespace) -> dict:
    """End-to-end ultra_fast/fast timing on a GPU. Needs CUDA and voxmith's pipeline.py; untested so far."""
    import torch

    if not torch.cuda.is_available():
        return {"skipped": "no CUDA device: the end-to-end preset timing (ultra_fast, fast) needs a GPU"}
    if importlib.util.find_spec("voxmith.engines.tortoise.pipeline") is None:
        return {"skipped": "voxmith.engines.tortoise.pipeline is missing"}
    results = {}
    for side in SIDES:
        results[side] = run_worker(side, "presets_cuda", args, ["--presets", ",".join(args.presets)])
    return results


def print_table(table: dict, args: argparse.Namespace, cpu: str) -> None:
    print(f"\nTorToiSe CPU speed, full size, {args.threads} threads, {cpu}; n = runs per side; "
          f"speedup = how many times faster voxmith is (official fp32 on the right).")
    print(f"{'':73s} {'---------- median ----------':>30s} {'------------ best ------------':>31s}")
    print(f"{'measurement':63s} {'n':>2s} {'unit':>6s} {'voxmith':>9s} {'official':>9s} {'speedup':>8s} "
          f"{'voxmith':>9s} {'official':>9s} {'speedup':>8s}")
    for row in table.values():
        n = min(len(v) for v in row["samples"].values())
        if "official" not in row:
            print(f"{row['label']:63s} {n:2d} {row['unit']:>6s} {row['ours']:9.3f} {'-':>9s} {'':8s} "
                  f"{row['ours_best']:9.3f}")
            continue
        print(f"{row['label']:63s} {n:2d} {row['unit']:>6s} {row['ours']:9.3f} {row['official']:9.3f} "
              f"{row['speedup_ours_vs_official']:7.2f}x {row['ours_best']:9.3f} {row['official_best']:9.3f} "
              f"{row['speedup_best']:7.2f}x")


def estimate_presets(table: dict, args: argparse.Namespace) -> dict:
    """End-to-end seconds of one sentence (`--sentence-codes` codes per AR row) with the ultra_fast and
    fast presets, ADDED UP FROM THE MEASURED PARTS (best runs), not timed as a whole: the CPU run would
    take tens of minutes per side. Linear scaling from the measured sizes (CLVP from 500 codes, diffusion
    and vocoder from 174 / 100 frames) under-counts the attention layers' quadratic part a little on both
    sides. Left out on both sides: the latent pass for the chosen candidate (one AR forward), CVVP (off
    in the presets), text and clip preprocessing. The AR batch is taken to run for the full sentence
    length (a batch stops with its longest row)."""
    batch = 16
    needed = [f"ar_prefill_b{batch}", f"ar_step_b{batch}", "ar_conditioning", "clvp_score", "diffusion_conditioning",
              "diffusion_timestep_independent", "diffusion_step", "vocoder"]
    if any(m not in table or "official" not in table[m] for m in needed):
        return {"skipped": f"needs the rows {', '.join(needed)} (AR shape {batch}xN and all tasks)"}
    codes = args.sentence_codes
    frames = codes * 4 * 24000 // 22050
    out = {"codes": codes, "frames": frames, "speech_s": round(codes * 1024 / 22050, 1),
           "how": estimate_presets.__doc__.split("\n\n")[0].replace("\n", " ")}
    precisions = ["float32"] + [p for p in args.ar_precisions if f"ar_step_b{batch}_{p}" in table]
    for preset, (samples, steps) in PRESET_SHAPES.items():
        entry = {}
        for side in ("official", "ours"):
            for precision in (["float32"] if side == "official" else precisions):
                suffix = "" if precision == "float32" else f"_{precision}"

                def part(metric: str) -> float:
                    return table[metric][f"{side}_best"]
                ar = part("ar_conditioning") + samples // batch * (
                    part(f"ar_prefill_b{batch}{suffix}") + (codes - 1) * part(f"ar_step_b{batch}{suffix}") / 1000)
                clvp = part("clvp_score") * samples / 16 * codes / 500
                diffusion = part("diffusion_conditioning") + part("diffusion_timestep_independent") + \
                    steps * part("diffusion_step") * frames / 174
                vocoder = part("vocoder") * frames / 100
                name = side if side == "official" else f"ours_{precision}"
                entry[name] = {"total_s": round(ar + clvp + diffusion + vocoder, 1), "ar_s": round(ar, 1),
                               "clvp_s": round(clvp, 1), "diffusion_s": round(diffusion, 1),
                               "vocoder_s": round(vocoder, 2)}
        out[preset] = entry
    return out


def print_estimate(estimate: dict) -> None:
    if "skipped" in estimate:
        print(f"\nend-to-end estimate: skipped ({estimate['skipped']})")
        return
    print(f"\nEND-TO-END ESTIMATE (sum of the measured parts, best runs; not timed as a whole), one sentence of "
          f"{estimate['codes']} codes (~{estimate['speech_s']} s of speech):")
    for preset in PRESET_SHAPES:
        for name, e in estimate[preset].items():
            print(f"  {preset:10s} {name:15s} {e['total_s']:8.1f} s  (AR {e['ar_s']:.1f}, CLVP {e['clvp_s']:.1f}, "
                  f"diffusion {e['diffusion_s']:.1f}, vocoder {e['vocoder_s']:.2f})")


def print_quality(quality: dict | None) -> None:
    if not quality:
        return
    print(f"\nAR precision vs voxmith fp32 ({quality.get('weights', 'shared random weights')}): "
          f"{quality['rows']} rows x {quality['tokens']} "
          f"codes teacher-forced; fp32 entropy {quality['reference_entropy_nats']:.2f} nats at T=.8, "
          f"top-1 prob {quality['reference_top1_prob']:.3f}")
    for name, entry in quality.items():
        if isinstance(entry, dict):
            print(f"  {name:9s} top-1 agreement {entry['top1_agreement']:.3f}  KL mean {entry['kl_mean']:.5f} "
                  f"max {entry['kl_max']:.5f} nats  nucleus mass ratio {entry['nucleus_mass_ratio']:.4f}  "
                  f"max logit error {entry['max_logit_error_rel']:.4f} std  "
                  f"same-seed codes equal for {entry['same_seed_codes_equal_until']} steps")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ar-shapes", type=parse_shapes, default=parse_shapes("1x200,16x100"),
                   help="AR runs as ROWSxCODES (fixed length): batch 1 at a sentence's length, the presets' "
                        "batch of 16 at 100 codes (default 1x200,16x100)")
    p.add_argument("--sentence-codes", type=int, default=200,
                   help="codes per AR row of the sentence in the end-to-end estimate (200 = 9.3 s of speech)")
    p.add_argument("--reps", type=int, default=3, help="repetitions per side (alternating)")
    p.add_argument("--clvp-reps", type=int, default=2,
                   help="repetitions for CLVP (16 x 500 codes takes ~45 s per side here; capped by --reps)")
    p.add_argument("--inner", type=int, default=1, help="timed repetitions inside each worker process")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tasks", type=lambda s: s.split(","), default=list(TASKS))
    p.add_argument("--presets", type=lambda s: s.split(","), default=["ultra_fast", "fast"])
    p.add_argument("--state-dir", type=Path, help="reuse/keep the shared random weights here")
    p.add_argument("--ref-python", type=Path, default=REF_PYTHON)
    p.add_argument("--ref-src", type=Path, default=REF_SRC)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--merge", action="store_true",
                   help="add these runs to the samples already in --out (same --ar-shapes/--threads)")
    p.add_argument("--update", action="store_true",
                   help="replace the metrics measured now in --out, keep its others (same --ar-shapes/--threads)")
    p.add_argument("--ar-precisions", type=lambda s: [x for x in s.split(",") if x], default=["int8", "bfloat16"],
                   help="voxmith's reduced AR precisions to time next to fp32 and to check in ar_quality")
    p.add_argument("--note", default="", help="free text stored with the results (conditions of the run)")
    p.add_argument("--resume", type=Path,
                   help="reuse the workers an interrupted run finished (its <out>.partial.json); same settings")
    p.add_argument("--keep-rows-from", type=Path,
                   help="take the rows of tasks not run now (not the AR rows) from this earlier results file; "
                        "they are labelled with its settings and machine")
    p.add_argument("--ar-checkpoint", type=Path,
                   help="ar_quality on this real autoregressive.pth instead of the shared random weights")
    args = p.parse_args()
    unknown = set(args.tasks) - set(TASKS)
    if unknown:
        p.error(f"unknown tasks {sorted(unknown)}; choose from {', '.join(TASKS)}")
    if not args.ref_python.exists() or not (args.ref_src / "tortoise").is_dir():
        sys.exit(f"official reference venv/source not found ({args.ref_python}, {args.ref_src})")

    started = time.perf_counter()
    temporary = args.state_dir is None
    if temporary:
        args.state_dir = Path(tempfile.mkdtemp(prefix="tortoise_speed_"))
    try:
        if not (args.state_dir / "state_info.json").exists():
            print(f"making shared random weights in {args.state_dir} ...", flush=True)
            run_worker("ours", "make_state", args)
        samples, log = measure(args)
        presets = presets_cuda(args)
    finally:
        if temporary:
            shutil.rmtree(args.state_dir, ignore_errors=True)

    previous = None
    if (args.merge or args.update) and args.out.exists():
        previous = json.loads(args.out.read_text())
        old = previous["settings"]
        if (old.get("ar_shapes"), old["threads"]) != ([list(s) for s in args.ar_shapes], args.threads):
            sys.exit(f"--merge/--update: {args.out} was made with other --ar-shapes/--threads")
        if args.update:  # metrics measured now replace the old ones; the rest are kept
            for metric, row in previous["table"].items():
                if metric not in samples and reference_metric(metric) == metric:
                    samples[metric] = {side: list(values) for side, values in row["samples"].items()}
            log = [out for out in previous["runs"] if out["_meta"]["task"] not in args.tasks] + log
        else:
            for metric, row in previous["table"].items():
                for side, values in row["samples"].items():
                    samples.setdefault(metric, {}).setdefault(side, [])[:0] = values
            log = previous["runs"] + log
    rows = table_rows(args)
    kept = None
    if args.keep_rows_from:  # rows of the tasks not run now, from an earlier results file (labelled)
        earlier = json.loads(args.keep_rows_from.read_text())
        kept = {"path": str(args.keep_rows_from), "tasks": [],
                "settings": {k: v for k, v in earlier["settings"].items() if k != "merged_from"},
                "machine": earlier.get("machine")}
        for out in earlier["runs"]:
            task = out["_meta"]["task"]
            if task in args.tasks or task == "autoregressive":
                continue
            out["_meta"]["kept_from"] = str(args.keep_rows_from)
            log.append(out)
            kept["tasks"] = sorted(set(kept["tasks"]) | {task})
            for metric, unit, _ in rows:
                if metric in out:
                    samples.setdefault(metric, {}).setdefault(out["_meta"]["side"], []).append(value_of(out[metric], unit))
    table = summarise(samples, rows)
    cpu = cpu_description()
    print_table(table, args, cpu["summary"])
    quality = next((out["ar_quality"] for out in reversed(log) if "ar_quality" in out), None)
    if quality is None and previous is not None:
        quality = previous.get("ar_quality")
    print_quality(quality)
    if "skipped" in presets:
        print(f"\nend-to-end presets: skipped ({presets['skipped']})")
    estimate = estimate_presets(table, args)
    print_estimate(estimate)
    checks = same_work_checks(log)
    print("\nsame-work checks:", json.dumps(checks))
    report = {
        "settings": {"ar_shapes": [list(s) for s in args.ar_shapes], "sentence_codes": args.sentence_codes,
                     "ar_precisions": args.ar_precisions, "reps": args.reps,
                     "clvp_reps": min(args.reps, args.clvp_reps), "inner": args.inner,
                     "threads": args.threads, "tasks": args.tasks, "device": "cpu",
                     "sampling": "temperature .8, top_p .8, repetition_penalty 2.0, top_k 50 (HF default), kv-cache",
                     "fixed_length": "mel_head.bias[stop]=-1e4 in the shared weights + max_generate_length=codes",
                     "ar_rows": "prompt pass = a 1-code generate call; per step = (N-code call - 1-code call) / "
                                "(N - 1); tok/s = rows * N / N-code call"},
        "machine": {"cpu": cpu, "platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "loadavg_end": loadavg()},
        "note": args.note, "rows_kept_from": kept,
        "table": table, "end_to_end_estimate": estimate, "ar_quality": quality, "same_work_checks": checks, "presets_cuda": presets, "runs": log,
        "total_wall_s": time.perf_counter() - started,
    }
    if previous is not None:
        report["settings"]["merged_from"] = previous["settings"].get("merged_from", []) + [previous["settings"]]
        report["settings"]["merge_mode"] = "update" if args.update else "merge"
        report["total_wall_s"] += previous["total_wall_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".partial.json").unlink(missing_ok=True)
    print(f"\nwrote {args.out} ({report['total_wall_s']:.0f} s in all)")


if __name__ == "__main__":
    main()
