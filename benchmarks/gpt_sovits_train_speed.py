"""Seconds per GPT-SoVITS fine-tuning step at full (v2) size, random weights, on the CPU.

The real checkpoints cannot be downloaded here, and speed does not depend on the weights' values. The
models are built at the official v2 sizes (SoVITS with its posterior encoder, the multi-period
discriminator, the 24-layer GPT, a 12-layer HuBERT base); one dataset line is the first 6 s of the demo
clip lj_1.flac with its transcript, its features computed by `training_data.compute_line`. One step is
what `train_loop` does per batch of `GptSovitsTrainingTask`: forward, backward, an AdamW step; a SoVITS
step (stage 1: generator + discriminator) and a GPT step (stage 2) are timed separately, after one
untimed warm-up step each.

    .venv/bin/python benchmarks/gpt_sovits_train_speed.py [--steps 2] [--threads 2]

Results go to benchmarks/results/gpt_sovits_train_speed.json (with the machine's load average).
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

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gpt_sovits_train_speed.json"
sys.path.insert(0, str(HERE.parent / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import soundfile as sf
    import torch
    from transformers import HubertConfig, HubertModel

    from voxmith.audio import load_audio
    from voxmith.studio.studio import demo_voice_files
    from voxmith.engines.base import TrainingLine
    from voxmith.engines.gpt_sovits.finetune import GptSovitsTrainingTask
    from voxmith.engines.gpt_sovits.hubert import HubertFeatures
    from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig
    from voxmith.engines.gpt_sovits.sovits_training import MultiPeriodDiscriminator
    from voxmith.engines.gpt_sovits.t2s import T2SConfig, Text2SemanticModel
    from voxmith.engines.gpt_sovits.training_data import compute_line, _read
    from voxmith.fsutil import atomic_path
    from voxmith.training.optimizers import build_optimizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sovits = SoVITS(SoVITSConfig(version="v2", with_posterior=True))
    discriminator = MultiPeriodDiscriminator("v2")
    t2s = Text2SemanticModel(T2SConfig())
    hubert = HubertFeatures(HubertModel(HubertConfig()))
    clip = demo_voice_files()[0]
    audio = load_audio(clip)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "line.wav"
        sf.write(wav, audio.samples[: 6 * audio.sample_rate_hz], audio.sample_rate_hz)
        line = TrainingLine(wav, "Printing, in the only sense with which we are at present concerned, differs.")
        started = time.perf_counter()
        arrays = compute_line(line, hubert, sovits.eval())
        features_s = time.perf_counter() - started
        path = Path(tmp) / "line.npz"
        with atomic_path(path) as out:
            import numpy as np

            np.savez(out, **arrays)
        features = _read(path)
    task = GptSovitsTrainingTask(sovits, discriminator, t2s, [features], [], batch_size=1, seed=0, epochs=2)
    model = task.model.train()
    optimizer = build_optimizer(task.parameter_groups(model, 1e-4), "adamw", 1e-4, torch.device("cpu"),
                                **task.optimizer_options)

    def step_seconds(batch) -> float:
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        losses = model(batch)
        sum(losses.values()).backward()
        optimizer.step()
        return time.perf_counter() - started

    out = {"device": "cpu", "threads": args.threads, "line_seconds": 6.0, "codes": int(features.codes.shape[0]),
           "phones": int(features.phone_ids.shape[0]), "features_seconds": round(features_s, 2),
           "parameters_m": {"sovits": round(sum(p.numel() for p in sovits.parameters()) / 1e6, 1),
                            "discriminator": round(sum(p.numel() for p in discriminator.parameters()) / 1e6, 1),
                            "gpt": round(sum(p.numel() for p in t2s.parameters()) / 1e6, 1)}}
    for stage, epoch in (("sovits", 0), ("gpt", 1)):
        batch = task.batches(epoch)[0]
        step_seconds(batch)  # warm-up
        times = [step_seconds(batch) for _ in range(args.steps)]
        out[f"{stage}_step_seconds"] = {"median": round(statistics.median(times), 2), "best": round(min(times), 2)}
    out["loadavg"] = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if os.path.exists("/proc/loadavg") else ""
    out["note"] = "batch of one 6 s line; a 2-core machine shared with other jobs (loadavg: at the end of the run)"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
