"""Speed and memory of TorToiSe fine-tuning steps at full size (random weights), on the CPU or CUDA.

The real checkpoints cannot be downloaded here, so the full-size UnifiedVoice (421.5M parameters) and
DVAE are built with their default random init; speed and memory do not depend on the values. One
training step is what `voxmith.training.train_loop` does per batch: `TortoiseFinetuneModel(batch)`
(conditioning encoder over two 2 s crops, GPT over text + codes, both cross-entropies), backward and
an AdamW step. The batch is one line: the first 6 s of the demo clip lj_1.flac (130 codes) with a
64-token transcript, conditioned on two crops of the clip, collated by `training_data.collate`.

Modes, each in its own process so that its peak RSS is its own:
* `full`: every AR weight trains (AdamW state for 421.5M parameters);
* `lora`: rank-16 adapters (alpha 32) on the GPT blocks' attn and mlp layers (the config defaults);
* `dvae`: computing the target codes of the same 6 s clip once (what the code cache saves).

Each mode runs `--warmup` untimed steps, then `--steps` timed ones; the table shows the median and
best seconds per step. On CUDA (`--device cuda`, or auto when available) timings synchronise the GPU,
the peak GPU memory is reported too, and the GPT uses activation checkpointing as the task does.

    .venv/bin/python benchmarks/tortoise_train_speed.py                  # CPU: 1 warm-up + 3 steps
    .venv/bin/python benchmarks/tortoise_train_speed.py --device cuda --steps 10

Results are merged into benchmarks/results/tortoise_train_speed.json under the device kind.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "tortoise_train_speed.json"
MODES = ("full", "lora", "dvae")
CLIP_SECONDS = 6.0
TEXT = ("printing, in the only sense with which we are at present concerned, differs from most if not "
        "from all the arts")


def build_batch():
    import torch

    from voxmith.engines.base import TrainingLine
    from voxmith.engines.tortoise.tokenizer import TortoiseTokenizer
    from voxmith.engines.tortoise.training_data import PreparedLine, collate, load_wave_22k
    from voxmith.studio import demo_voice_files

    path = demo_voice_files()[0]
    wave = load_wave_22k(path)[:int(CLIP_SECONDS * 22050)]
    tokens = torch.tensor(TortoiseTokenizer().encode(TEXT), dtype=torch.long)
    codes = torch.randint(0, 8192, (wave.shape[-1] // 1024 + 1,), generator=torch.Generator().manual_seed(0))
    line = PreparedLine(TrainingLine(path, TEXT), tokens, codes, wave)
    # Two conditioning crops of the clip, 0.5 s and 2 s in.
    return wave, collate([line], [(0, ((0, 11025), (0, 44100)))])


def time_steps(step, sync, warmup: int, steps: int) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def worker(mode: str, device: str, warmup: int, steps: int) -> dict:
    import torch

    from voxmith.engines.base import LoraSpec
    from voxmith.engines.tortoise.audio import ar_conditioning_mel
    from voxmith.engines.tortoise.autoregressive import UnifiedVoice
    from voxmith.engines.tortoise.dvae import DiscreteVAE
    from voxmith.engines.tortoise.training import TortoiseFinetuneModel

    torch.manual_seed(0)
    wave, batch = build_batch()
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    info: dict = {"mode": mode, "codes": int(batch.codes.shape[1]), "text_tokens": int(batch.text.shape[1])}
    if mode == "dvae":
        dvae = DiscreteVAE().to(device).eval()
        padded = torch.nn.functional.pad(wave, (0, 16384)).to(device)
        times = time_steps(lambda: dvae.get_codebook_indices(ar_conditioning_mel(padded[None])), sync, warmup, steps)
    else:
        ar = UnifiedVoice().to(device)
        ar.gpt.checkpointing = cuda
        model = TortoiseFinetuneModel(ar, LoraSpec(16, 32.0, ("attn", "mlp")) if mode == "lora" else None)
        params = [p for p in model.parameters() if p.requires_grad]
        info["trainable_parameters"] = sum(p.numel() for p in params)
        info["checkpoint_mb"] = round(sum(v.numel() * v.element_size() for v in model.state_dict().values()) / 2**20, 1)
        optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.01)
        model.train()

        def step():
            optimizer.zero_grad(set_to_none=True)
            losses = model(batch)
            (losses["mel"] + 0.01 * losses["text"]).backward()
            optimizer.step()

        times = time_steps(step, sync, warmup, steps)
    info.update(seconds_per_step_median=round(statistics.median(times), 3), seconds_per_step_best=round(min(times), 3),
                seconds=[round(t, 3) for t in times],
                peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2))
    if cuda:
        info["peak_cuda_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--modes", type=lambda s: s.split(","), default=list(MODES))
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.worker:
        print(json.dumps(worker(args.worker, device, args.warmup, args.steps)))
        return
    results = {}
    for mode in args.modes:
        load = os.getloadavg()[0]
        command = [sys.executable, __file__, "--worker", mode, "--device", device, "--warmup", str(args.warmup),
                   "--steps", str(args.steps), "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{mode} failed:\n{done.stderr[-3000:]}")
        results[mode] = {**json.loads(done.stdout.strip().splitlines()[-1]), "load_average_before": round(load, 2)}
        r = results[mode]
        print(f"{mode:5s} {r['seconds_per_step_median']:8.2f} s/step median  {r['seconds_per_step_best']:8.2f} best  "
              f"peak RSS {r['peak_rss_gb']:.1f} GB" + (f"  peak CUDA {r['peak_cuda_gb']:.1f} GB" if 'peak_cuda_gb' in r else ""))
    kind = "cuda" if device.startswith("cuda") else "cpu"
    record = {"device": torch.cuda.get_device_name(0) if kind == "cuda" else platform.processor() or platform.machine(),
              "torch": torch.__version__, "threads": args.threads, "batch_size": 1, "clip_seconds": CLIP_SECONDS,
              "warmup": args.warmup, "steps": args.steps, "cpu_count": os.cpu_count(), "results": results,
              "note": "full-size models with random weights; shared machine, see load_average_before"}
    merged = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged[kind] = record
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(merged, indent=2) + "\n")
    print("saved", args.out)


if __name__ == "__main__":
    main()
