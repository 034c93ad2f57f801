"""Speed of voxmith's SoVITS decoder (GPT-SoVITS v2 / v2ProPlus) against the official SynthesizerTrn, on the CPU.

Full-size models (official configs) with identical random weights (tests/fixtures/gpt_sovits/
sovits_golden.randomized_state, fixed seed, in the official weight-norm layout, saved once to a
temporary folder) and identical inputs: `--seconds` of speech (25 Hz codes, 12 phones per second),
one reference spectrogram of 5 s, noise_scale 0.5. For v2ProPlus a random speaker embedding is
passed (the ERes2NetV2 step is not timed here). Timed: one `decode` call, after one warm-up call;
semantic-code extraction (`ssl_proj` + quantiser) of 5 s of HuBERT features is timed too.

Each side runs in its own process (voxmith's here, the official one in the reference venv,
`--ref-python` with PYTHONPATH=`--ref-src`), one process per (version, side, repetition), sides
alternating and the first side alternating per repetition, torch with `--threads` threads. The
machine is shared: the table reports medians and best runs, with official/ours ratios (> 1: voxmith
is faster) and /proc/loadavg around each run. The outputs of the two sides are compared (max abs
difference of the waveforms, the noise drawn from the same seed on both sides) as a check that both
did the same work.

    .venv/bin/python benchmarks/gpt_sovits_sovits_speed.py                  # v2 and v2ProPlus, 3 reps
    .venv/bin/python benchmarks/gpt_sovits_sovits_speed.py --versions v2 --reps 5 --seconds 8

Results: benchmarks/results/gpt_sovits_sovits_speed.json.
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
from machine import cpu_name  # benchmarks/machine.py: the script's own folder is on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "gpt_sovits_sovits_speed.json"
REF_PYTHON = Path("/tmp/gsv_ref/venv/bin/python")
REF_SRC = Path("/tmp/gsv_ref/GPT-SoVITS")
SEEDS = {"v2": 2401, "v2ProPlus": 2402}
OFFICIAL_CONFIGS = {"v2": "s2.json", "v2ProPlus": "s2v2ProPlus.json"}


# ----------------------------------------------------------------------------- worker (both venvs)

def _inputs(seconds: float, version: str):
    import torch

    g = torch.Generator().manual_seed(77)
    frames = int(seconds * 25)
    codes = torch.randint(0, 1024, (1, 1, frames), generator=g)
    phones = torch.randint(0, 732, (1, int(seconds * 12)), generator=g)
    spec = torch.rand(1, 1025, 250, generator=g) * 2          # a 5 s reference
    hubert = torch.randn(1, 768, 250, generator=g)
    sv = torch.randn(1, 20480, generator=g) * 0.2 if version != "v2" else None
    return codes, phones, spec, hubert, sv


def _official_model(version: str, weights: dict):
    from module.models import SynthesizerTrn

    hps = json.loads((REF_SRC / "GPT_SoVITS" / "configs" / OFFICIAL_CONFIGS[version]).read_text())
    model = SynthesizerTrn(1025, hps["train"]["segment_size"] // hps["data"]["hop_length"],
                           n_speakers=hps["data"]["n_speakers"], **{**hps["model"], "version": version})
    model.load_state_dict(weights, strict=True)
    return model.eval()


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    weights = torch.load(args.weights, weights_only=True)
    codes, phones, spec, hubert, sv = _inputs(args.seconds, args.version)
    if args.side == "official":
        model = _official_model(args.version, weights)

        def decode():
            torch.manual_seed(5)
            return model.decode(codes, phones, spec, noise_scale=0.5, sv_emb=sv)[0, 0]

        def extract():
            return model.extract_latent(hubert)[0, 0]
    else:
        from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig
        from voxmith.engines.gpt_sovits.sovits_checkpoint import fold_weight_norm

        with torch.device("meta"):
            model = SoVITS(SoVITSConfig.for_version(args.version))
        state = {k: v for k, v in fold_weight_norm(weights).items() if not k.startswith("enc_q.")}
        model.load_state_dict(state, strict=True, assign=True)
        model.eval()

        def decode():
            return model.decode(codes[0], phones, spec, noise_scale=0.5, sv_embedding=sv,
                                generator=torch.Generator().manual_seed(5))[0]

        def extract():
            return model.extract_codes(hubert)[0]
    with torch.no_grad():
        decode()                                                   # warm-up
        load_before = Path("/proc/loadavg").read_text().split()[0]
        t0 = time.perf_counter()
        wave = decode()
        t_decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        codes_out = extract()
        t_extract = time.perf_counter() - t0
    out = {"decode_s": t_decode, "extract_s": t_extract, "samples": int(wave.shape[-1]),
           "loadavg_before": load_before, "loadavg_after": Path("/proc/loadavg").read_text().split()[0]}
    torch.save({"wave": wave, "codes": codes_out}, args.output + ".pt")
    Path(args.output).write_text(json.dumps(out))


# ----------------------------------------------------------------------------- driver (voxmith venv)

def make_weights(version: str, folder: Path) -> Path:
    import torch

    sys.path.insert(0, str(ROOT))
    from tests.fixtures.gpt_sovits.sovits_golden import randomized_state
    from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig
    from voxmith.engines.gpt_sovits.sovits_checkpoint import to_weight_norm_form

    with torch.device("meta"):
        model = SoVITS(SoVITSConfig(**{**SoVITSConfig.for_version(version).__dict__, "with_posterior": True}))
    state = randomized_state(to_weight_norm_form(model.state_dict()), SEEDS[version])
    path = folder / f"sovits_{version}.pt"
    torch.save(state, path)
    return path


def run_side(side: str, version: str, weights: Path, args, folder: Path, rep: int) -> dict:
    output = folder / f"{version}_{side}_{rep}.json"
    cmd = [str(args.ref_python if side == "official" else sys.executable), __file__, "--worker", "--side", side,
           "--version", version, "--weights", str(weights), "--output", str(output),
           "--threads", str(args.threads), "--seconds", str(args.seconds)]
    env = dict(os.environ)
    if side == "official":
        env["PYTHONPATH"] = f"{args.ref_src / 'GPT_SoVITS'}:{args.ref_src}"
    else:
        env["PYTHONPATH"] = f"{ROOT / 'src'}:{env.get('PYTHONPATH', '')}"
    subprocess.run(cmd, check=True, env=env, cwd=str(ROOT))
    return json.loads(output.read_text())


def summarise(runs: list[dict], key: str) -> dict:
    values = [r[key] for r in runs]
    return {"median_s": statistics.median(values), "best_s": min(values), "all_s": values}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", default="ours")
    parser.add_argument("--version", default="v2")
    parser.add_argument("--weights", default="")
    parser.add_argument("--output", default="")
    parser.add_argument("--versions", default="v2,v2ProPlus")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the speech to decode")
    parser.add_argument("--ref-python", type=Path, default=REF_PYTHON)
    parser.add_argument("--ref-src", type=Path, default=REF_SRC)
    parser.add_argument("--note", default="", help="free text stored with the results (conditions of the run)")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    import torch

    results = {"settings": {"seconds": args.seconds, "reps": args.reps, "threads": args.threads,
                            "reference_frames": 250, "noise_scale": 0.5, "device": "cpu"},
               "machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "torch": torch.__version__,
                           "loadavg_start": Path("/proc/loadavg").read_text().strip()},
               "note": args.note, "table": {}, "same_work_checks": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for version in args.versions.split(","):
            weights = make_weights(version, folder)
            runs = {"ours": [], "official": []}
            for rep in range(args.reps):
                order = ("ours", "official") if rep % 2 == 0 else ("official", "ours")
                for side in order:
                    runs[side].append(run_side(side, version, weights, args, folder, rep))
                    print(version, side, rep, runs[side][-1], flush=True)
            ours = torch.load(folder / f"{version}_ours_0.json.pt")
            official = torch.load(folder / f"{version}_official_0.json.pt")
            audio_s = runs["ours"][0]["samples"] / 32000
            row = {}
            for key in ("decode_s", "extract_s"):
                o, f = summarise(runs["ours"], key), summarise(runs["official"], key)
                row[key] = {"ours": o, "official": f, "ratio_median": f["median_s"] / o["median_s"],
                            "ratio_best": f["best_s"] / o["best_s"]}
            row["rtf_decode_ours_median"] = row["decode_s"]["ours"]["median_s"] / audio_s
            row["rtf_decode_official_median"] = row["decode_s"]["official"]["median_s"] / audio_s
            row["audio_s"] = audio_s
            row["loadavg"] = [(r["loadavg_before"], r["loadavg_after"]) for side in runs.values() for r in side]
            results["table"][version] = row
            results["same_work_checks"][version] = {
                "wave_max_abs_diff": float((ours["wave"] - official["wave"]).abs().max()),
                "codes_equal": bool(torch.equal(ours["codes"], official["codes"]))}
    results["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results["table"], indent=1))
    print(json.dumps(results["same_work_checks"], indent=1))


if __name__ == "__main__":
    main()
