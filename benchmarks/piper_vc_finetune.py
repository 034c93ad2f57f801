"""piper-vc fine-tuning benchmark: speaker similarity and intelligibility before and after training.

For each speaker folder in ../shared/voices (skipped cleanly when absent), the last clip is held
out; the others
1. enroll the voice as usual ("stock": the engine's conditioning from those clips);
2. become a dataset (Studio.prepare_dataset: cut at pauses, Whisper transcripts);
3. train the piper-vc task on that dataset through voxmith.training.train_loop, with the engine's
   training_defaults and `--epochs`.
Fixed sentences are synthesised with the stock conversion, with the fine-tune's untrained base
("base": the enrolled conversion of the dataset's segments, step 0) and with the trained
checkpoint ("tuned"), and scored as in clone_quality.py: SECS (GE2E cosine to the held-out clip)
and WER (bundled Whisper base, pooled over the sentences). Times: feature preparation (WORLD,
Piper, warp search; cached afterwards) and training, on this machine.

    .venv/bin/python benchmarks/piper_vc_finetune.py [--voices tom,pat] [--epochs 150]
                                                     [--sentences 4] [--out PATH] [--work DIR]
Writes benchmarks/results/piper_vc_finetune.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clone_quality import AUDIO_EXT, SENTENCES, VOICES_DIR, word_errors  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "piper_vc_finetune.json"
DEFAULT_VOICES = "tom,pat,daniel,emma"


def score(engine, cond, sentences, held_out, encoder) -> dict:
    from voxmith.engines.piper_vc.intelligibility import transcribe_clip
    from voxmith.speaker import cosine_similarity

    secs, errors, words = [], 0, 0
    for k, sentence in enumerate(sentences):
        cand = engine.synthesize(sentence, cond, engine.settings_class(), seed=k)[0]
        secs.append(cosine_similarity(encoder.embed(cand.samples, cand.sample_rate_hz), held_out))
        wrong, count = word_errors(sentence, transcribe_clip(cand.samples, cand.sample_rate_hz))
        errors, words = errors + wrong, words + count
    return {"secs": float(np.mean(secs)), "wer": errors / max(words, 1)}


def bench_voice(name: str, epochs: int, sentences, encoder, work: Path, postnet_changes: dict) -> dict:
    from voxmith.audio import load_audio
    from voxmith.engines import Finetune, FinetuneSpec
    from voxmith.engines.piper_vc import PiperVCEngine
    from voxmith.studio import Studio
    from voxmith.training import TrainingConfig, TrainingRun, defaults_for, train_loop

    files = sorted(p for p in (VOICES_DIR / name).iterdir() if p.suffix.lower() in AUDIO_EXT)
    clips = [load_audio(p) for p in files[:-1]]
    held = load_audio(files[-1])
    held_out = encoder.embed(held.samples, held.sample_rate_hz)
    engine = PiperVCEngine(device="cpu")
    # With --work, the stock conditioning, its scores and the dataset are kept between runs.
    stock_file = work / name / "stock.npz"
    if stock_file.is_file():
        cond = dict(np.load(stock_file))
        stock = json.loads((work / name / "stock.json").read_text())
    else:
        cond = engine.prepare_conditioning(clips)
        stock = score(engine, cond, sentences, held_out, encoder)
        stock_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(stock_file, **cond)
        (work / name / "stock.json").write_text(json.dumps(stock))
    row = {"voice": name, "clips": len(clips), "audio_s": round(sum(c.duration_s for c in clips), 1),
           "stock": stock}

    studio = Studio(work / name / "workspace", device="cpu")
    if name not in studio.datasets.names():
        studio.prepare_dataset(name, list(files[:-1]))
    data = studio.datasets.get(name)
    train, validation = studio.training.lines(name)
    config = defaults_for(len(train), epochs, dataset=name, engine="piper-vc")
    merged = config.to_dict()
    for section, values in PiperVCEngine.training_defaults.items():
        merged[section].update(values)
    config = TrainingConfig.from_dict(merged)
    config.checkpoints.validate_every_steps = 0  # no validation lines below 10 segments
    spec = FinetuneSpec(train=train, validation=validation, batch_size=config.schedule.batch_size,
                        seed=config.misc.seed, cache_dir=data.path / ".cache" / "training")
    t = time.perf_counter()
    if postnet_changes:  # research: another network or loss than the engine's default
        from voxmith.engines.piper_vc import postnet, training
        task = training.build_task(spec, engine.cache_key(), config=postnet.PostnetConfig(**postnet_changes))
    else:
        task = engine.training_task(spec)
    prepare_s = time.perf_counter() - t
    step0 = {k: v.clone() for k, v in task.model.state_dict().items()}
    shutil.rmtree(work / name / "training", ignore_errors=True)
    run = TrainingRun.create(work / name / "training", f"{name}-ft", config)
    t = time.perf_counter()
    result = train_loop(task, run, config=config, handle_sigint=False)
    train_s = time.perf_counter() - t
    metrics = run.read_metrics()

    base = engine.with_finetune(Finetune("base", "step 0", lambda: step0))
    row["base"] = score(base, cond, sentences, held_out, encoder)
    state = run.checkpoints.load(run.checkpoints.latest())["model"]
    tuned = engine.with_finetune(Finetune("tuned", f"step {result.step}", lambda: state))
    row["tuned"] = score(tuned, cond, sentences, held_out, encoder)
    row.update(lines=len(train) + len(validation), steps=result.step, prepare_s=round(prepare_s, 1),
               train_s=round(train_s, 1), first_loss=metrics[0]["cepstral_loss"], last_loss=metrics[-1]["cepstral_loss"])
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default=DEFAULT_VOICES, help="comma-separated voice folder names")
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--sentences", type=int, default=4)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--postnet", default="", help="PostnetConfig changes, e.g. gv_weight=0,hidden=64")
    ap.add_argument("--work", default="", help="folder kept between runs (stock enrollment, datasets, "
                                               "feature caches); default: a temporary folder")
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to benchmark.")
        return 0
    from voxmith.speaker import get_speaker_encoder

    encoder = get_speaker_encoder("cpu")
    sentences = SENTENCES[: max(1, args.sentences)]
    changes = {k: (int(v) if v.isdigit() else float(v))
               for k, v in (item.split("=") for item in args.postnet.split(",") if item)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        for name in [v for v in args.voices.split(",") if v]:
            if not (VOICES_DIR / name).is_dir():
                print(f"skipping {name}: not in {VOICES_DIR}")
                continue
            row = bench_voice(name, args.epochs, sentences, encoder, work, changes)
            rows.append(row)
            print(f"{name:10s} {row['audio_s']:5.1f}s audio, {row['lines']} lines, {row['steps']} steps | "
                  + " | ".join(f"{k} SECS {row[k]['secs']:.3f} WER {row[k]['wer'] * 100:4.1f}%"
                               for k in ("stock", "base", "tuned"))
                  + f" | prepare {row['prepare_s']:.0f}s train {row['train_s']:.0f}s "
                  f"loss {row['first_loss']:.3f}->{row['last_loss']:.3f}", flush=True)
    summary = {k: {"secs": float(np.mean([r[k]["secs"] for r in rows])),
                   "wer": float(np.mean([r[k]["wer"] for r in rows]))} for k in ("stock", "base", "tuned")} if rows else {}
    if rows:
        summary["train_s"] = float(np.mean([r["train_s"] for r in rows]))
        summary["prepare_s"] = float(np.mean([r["prepare_s"] for r in rows]))
        print("\nmean over voices: " + " | ".join(
            f"{k} SECS {summary[k]['secs']:.3f} WER {summary[k]['wer'] * 100:.1f}%" for k in ("stock", "base", "tuned"))
            + f" | prepare {summary['prepare_s']:.0f}s train {summary['train_s']:.0f}s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"sentences": sentences, "epochs": args.epochs, "cpu_cores": os.cpu_count(), "postnet": changes,
                                          "rows": rows, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
