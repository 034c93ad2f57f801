"""Reduced-precision SoVITS decode on the CPU (GPT-SoVITS v2 / v2ProPlus): speed and what it costs.

The question (issue 14): the GPT's int8 copy made code sampling 1.6x faster because each step reads
every weight (memory bound); is there a CPU precision that makes the SoVITS decode — convolutions over
the whole utterance, compute bound, about 85 % of it in the HiFi-GAN generator `dec` — clearly
faster at a negligible cost? int8 dynamic quantisation (`voxmith.engines.precision`) only covers
linear layers, and the decoder is convolutions; what is left on a CPU are bf16 and fp16 weights and
activations (oneDNN kernels; AMX-BF16 / AVX512-FP16 on this CPU). Variants, on the same inputs as
benchmarks/gpt_sovits_sovits_speed.py (random full-size weights in the official layout, `--seconds`
of 25 Hz codes, one 5 s reference spectrogram, noise scale 0.5, the same noise):
* `float32`: `SoVITS.decode` as the engine runs it;
* `bfloat16_dec` / `float16_dec`: the generator `dec` as a bf16 / fp16 copy (inputs cast in, output
  cast back), the rest fp32;
* `bfloat16_all`: the whole decode under `torch.autocast("cpu", bfloat16)`.
Timed in one process, variants interleaved per repetition (same library, same load), `--threads`
threads; medians and best runs, ratio float32 / variant (> 1: the variant is faster).

Quality, against the fp32 output on the same inputs and noise: the waveform's SNR (dB), and the L1
distance of log-mel spectrograms (128 bands, the SoVITS training mel) divided by the distance between
two fp32 takes that differ only in their noise seed (what one take to the next changes anyway):
ratio << 1 means the precision's change is far smaller than take-to-take variation (with random
weights the generator hardly depends on its input, so that baseline comes out near 0 and only the SNR
says something: see the results' note). What this cannot tell: random weights give noise-like audio with activation ranges of their own; real checkpoints can
have larger activations (bf16 keeps 8 bits of mantissa, fp16 overflows above 65504), so a listening
check and the same figures on the real files are needed before any default changes.

    .venv/bin/python benchmarks/gpt_sovits_sovits_precision.py --reps 3 --seconds 2

Results: benchmarks/results/gpt_sovits_sovits_precision.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from machine import cpu_name  # benchmarks/machine.py: the script's own folder is on sys.path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "gpt_sovits_sovits_precision.json"
SEEDS = {"v2": 2401, "v2ProPlus": 2402}
VARIANTS = ("float32", "bfloat16_dec", "float16_dec", "bfloat16_all")


def build(version: str):
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.gpt_sovits.sovits_golden import randomized_state
    from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig
    from voxmith.engines.gpt_sovits.sovits_checkpoint import fold_weight_norm, to_weight_norm_form

    with torch.device("meta"):
        model = SoVITS(SoVITSConfig.for_version(version))
    state = fold_weight_norm(randomized_state(to_weight_norm_form(model.state_dict()), SEEDS[version]))
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


class CastDecoder(torch.nn.Module):
    """The generator at another dtype: inputs cast in, the waveform cast back to fp32."""

    def __init__(self, dec: torch.nn.Module, dtype: torch.dtype):
        super().__init__()
        self.dec, self.dtype = copy.deepcopy(dec).to(dtype), dtype

    def forward(self, z, g=None):
        return self.dec(z.to(self.dtype), g=None if g is None else g.to(self.dtype)).float()


def inputs(seconds: float, version: str):
    g = torch.Generator().manual_seed(77)
    codes = torch.randint(0, 1024, (int(seconds * 25),), generator=g)
    phones = torch.randint(0, 732, (int(seconds * 12),), generator=g)
    spec = torch.rand(1, 1025, 250, generator=g) * 2
    sv = torch.randn(1, 20480, generator=g) * 0.2 if version != "v2" else None
    return codes, phones, spec, sv


def log_mel(wave: torch.Tensor) -> torch.Tensor:
    from voxmith.engines.gpt_sovits.sovits_losses import mel_of_waveform

    return mel_of_waveform(wave.reshape(1, -1).float())


def run_version(version: str, args) -> dict:
    model = build(version)
    codes, phones, spec, sv = inputs(args.seconds, version)
    from voxmith.engines.precision import shallow_tree

    cast = {"bfloat16_dec": shallow_tree(model), "float16_dec": shallow_tree(model)}  # views sharing the weights
    cast["bfloat16_dec"].dec = CastDecoder(model.dec, torch.bfloat16)
    cast["float16_dec"].dec = CastDecoder(model.dec, torch.float16)
    assert isinstance(model.dec, type(cast["bfloat16_dec"].dec.dec))  # the fp32 model kept its own generator

    def decode(variant: str, seed: int = 5) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            if variant == "bfloat16_all":
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return model.decode(codes, phones, spec, sv_embedding=sv, generator=generator)[0].float()
            target = model if variant == "float32" else cast[variant]
            return target.decode(codes, phones, spec, sv_embedding=sv, generator=generator)[0].float()

    outputs = {variant: decode(variant) for variant in VARIANTS}  # also the warm-up
    other_take = decode("float32", seed=6)
    reference = outputs["float32"]
    take_distance = float((log_mel(other_take) - log_mel(reference)).abs().mean())
    quality = {}
    for variant in VARIANTS[1:]:
        out = outputs[variant]
        error = (out - reference).pow(2).mean() / reference.pow(2).mean()
        mel_distance = float((log_mel(out) - log_mel(reference)).abs().mean())
        quality[variant] = {"snr_db": float(-10 * torch.log10(error)) if error > 0 else None,
                            "finite": bool(torch.isfinite(out).all()),
                            "log_mel_l1_to_fp32": mel_distance,
                            "relative_to_take_variation": mel_distance / take_distance}
    times = {variant: [] for variant in VARIANTS}
    loads = []
    for rep in range(args.reps):
        order = VARIANTS if rep % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            loads.append(Path("/proc/loadavg").read_text().split()[0])
            t0 = time.perf_counter()
            decode(variant)
            times[variant].append(time.perf_counter() - t0)
    speed = {variant: {"median_s": statistics.median(v), "best_s": min(v), "all_s": v} for variant, v in times.items()}
    for variant in VARIANTS[1:]:
        speed[variant]["speedup_median"] = speed["float32"]["median_s"] / speed[variant]["median_s"]
        speed[variant]["speedup_best"] = speed["float32"]["best_s"] / speed[variant]["best_s"]
    return {"audio_s": reference.shape[-1] / 32000, "speed": speed, "quality": quality,
            "fp32_take_to_take_log_mel_l1": take_distance, "loadavg_during": loads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", default="v2,v2ProPlus")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "src"))
    from voxmith.engines.device import cpu_info

    flags = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8")
             if cpu_info().has(f)]
    results = {"settings": {"seconds": args.seconds, "reps": args.reps, "threads": args.threads,
                            "noise_scale": 0.5, "reference_frames": 250},
               "machine": {"cpu": cpu_name(), "cpu_flags": flags, "cpus": os.cpu_count(), "torch": torch.__version__,
                           "loadavg_start": Path("/proc/loadavg").read_text().strip()},
               "note": args.note, "table": {}}
    for version in args.versions.split(","):
        results["table"][version] = run_version(version, args)
        print(version, json.dumps(results["table"][version], indent=1), flush=True)
    results["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().strip()
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
