"""Does fine-tuning the pretrained SV2TTS speaker encoder on a workspace's few speakers help it tell
them apart on clips it did not train on? Measured on ALL shared voices (../shared/voices).

Each voice's last clip (by name) is held out; its other clips are the training data (a voice with a
single other clip cannot be trained on, GE2E needs 2, but it is still evaluated). Before and after
`--steps` optimizer steps of voxmith's encoder training (the official recipe: GE2E, Adam 1e-4, the
similarity gradients x 0.01, clipping at 3; batches scaled to the data), every held-out clip is
embedded (all of it, as the sv2tts engine embeds a voice's clips) and compared (cosine) with every
voice's enrolment embedding (the average of its training clips' embeddings). Reported per voice:
the margin = similarity to its own enrolment - the highest similarity to another voice's (> 0: told
apart); overall: identification accuracy, the equal error rate of own vs other pairs, and the worst
voice. applejack and rainbow are two characters of one actress, so their margins are expected low.

    .venv/bin/python benchmarks/sv2tts_encoder_finetune.py   # -> benchmarks/results/sv2tts_encoder_finetune.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from voxmith.audio import load_audio
from voxmith.engines.sv2tts import checkpoints
from voxmith.engines.sv2tts.encoder_audio import preprocess_wav
from voxmith.engines.sv2tts.encoder_data import SpeakerSource
from voxmith.engines.sv2tts.encoder_training import (ENCODER_TRAINING_DEFAULTS, LOSSES, EncoderTrainingSettings,
                                                     EncoderTrainingTask, encoder_state, pretrained_encoder)
from voxmith.engines.sv2tts.speaker_encoder import average_embedding, embed_utterance
from voxmith.training import TrainingConfig, TrainingRun, train_loop

ROOT = Path(__file__).resolve().parents[1]
VOICES = Path(os.environ.get("VOXMITH_SHARED_VOICES", ROOT.parent / "shared" / "voices"))
AUDIO = (".wav", ".mp3", ".flac")


def clips(voice: Path) -> list[Path]:
    return sorted(p for p in voice.iterdir() if p.suffix.lower() in AUDIO)


def embed(encoder, path: Path) -> np.ndarray:
    clip = load_audio(path)
    return embed_utterance(encoder, preprocess_wav(clip.samples, clip.sample_rate_hz))


def evaluate(encoder, split: dict) -> dict:
    encoder.eval()
    names = sorted(split)
    held = np.stack([embed(encoder, split[n]["held_out"]) for n in names])
    enrol = np.stack([average_embedding(np.stack([embed(encoder, p) for p in split[n]["train"]])) for n in names])
    scores = held @ enrol.T  # unit vectors: cosine similarities
    own = np.diag(scores)
    others = np.where(np.eye(len(names), dtype=bool), -np.inf, scores)
    margins = own - others.max(axis=1)
    labels = np.eye(len(names), dtype=bool).ravel()
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores.ravel())
    eer_index = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return {"accuracy": float(np.mean(scores.argmax(axis=1) == np.arange(len(names)))),
            "eer": float((fpr[eer_index] + 1 - tpr[eer_index]) / 2),
            "mean_margin": float(margins.mean()),
            "worst_voice": names[int(np.argmin(margins))],
            "margins": {n: round(float(m), 4) for n, m in zip(names, margins)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sv2tts_encoder_finetune.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    location = checkpoints.find_checkpoint("encoder.pt")
    if location is None or not VOICES.is_dir():
        raise SystemExit("needs the official encoder.pt (resemblyzer) and the shared voices")
    split = {v.name: {"train": clips(v)[:-1], "held_out": clips(v)[-1]} for v in sorted(VOICES.iterdir()) if v.is_dir()}
    before = evaluate(pretrained_encoder(location.path), split)
    with tempfile.TemporaryDirectory() as tmp:
        sources = [SpeakerSource(n, tuple(s["train"])) for n, s in split.items()]
        task = EncoderTrainingTask(pretrained_encoder(location.path), sources, EncoderTrainingSettings(umap_every=0),
                                   seed=args.seed, cache_dir=Path(tmp) / "cache")
        config = TrainingConfig.from_dict({"data": {"dataset": "voices", "engine": "sv2tts"}, **ENCODER_TRAINING_DEFAULTS,
                                           "checkpoints": {"save_every_steps": 10 ** 6, "validate_every_steps": 0}})
        config.schedule.epochs = -(-args.steps // task.steps)
        run = TrainingRun.create(Path(tmp) / "training", "enc", config, LOSSES)
        started = time.perf_counter()
        result = train_loop(task, run, handle_sigint=False)
        seconds = time.perf_counter() - started
        rows = run.read_metrics()
        tuned = pretrained_encoder(location.path)
        tuned.load_state_dict(encoder_state(run.checkpoints.load(result.checkpoint)["model"]))
    after = evaluate(tuned, split)
    first, last = rows[:5], rows[-5:]
    report = {
        "what": "pretrained SV2TTS encoder vs fine-tuned on the shared voices' other clips; held-out last clip per voice",
        "command": "python benchmarks/sv2tts_encoder_finetune.py" + (f" --steps {args.steps}" if args.steps != 60 else ""),
        "voices": len(split), "trained_speakers": len(task.speakers), "left_out_of_training": task.left_out,
        "batch": {"speakers": task.shape.speakers, "utterances": task.shape.utterances},
        "steps": result.step, "seconds_per_step": round(seconds / max(1, result.step), 3),
        "train_loss_first5": round(float(np.mean([r["encoder.ge2e_loss"] for r in first])), 4),
        "train_loss_last5": round(float(np.mean([r["encoder.ge2e_loss"] for r in last])), 4),
        "train_eer_first5": round(float(np.mean([r["eer"] for r in first])), 4),
        "train_eer_last5": round(float(np.mean([r["eer"] for r in last])), 4),
        "before": before, "after": after,
        "threads": args.threads, "loadavg": open("/proc/loadavg").read().split()[:3], "cpu": platform.processor(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
