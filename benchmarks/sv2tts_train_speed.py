"""Seconds per sv2tts fine-tuning step at full (official) size, random weights, on the CPU.

The real synthesizer/vocoder checkpoints cannot be downloaded here, and speed does not depend on the
weights' values. The models are built at the official sizes; the encoder is resemblyzer's bundled
encoder.pt (the official one). The dataset is the demo voice's clips, prepared as `train run` does
(`training_data.prepare_lines`: official preprocessing, the preparation itself timed too), each with
the same sentence of about their length as transcript. One step is
what `train_loop` does per batch: forward, backward, gradient clipping (synthesizer), an AdamW step
without weight decay. A synthesizer step (batch of the demo's lines, r = 2) and a vocoder step (one
1000-sample window per line, ground-truth mels) are timed, after one untimed warm-up step each.

    .venv/bin/python benchmarks/sv2tts_train_speed.py [--steps 2] [--threads 2]

Results go to benchmarks/results/sv2tts_train_speed.json (with the machine's load average).
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
RESULTS = HERE / "results" / "sv2tts_train_speed.json"
# The clips ship without transcripts; speed depends on the text's length only (about the clips' own).
TEXT = "Printing, in the only sense with which we are at present concerned, differs from most if not from all the arts."
sys.path.insert(0, str(HERE.parent / "src"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from voxmith.engines.base import TrainingLine
    from voxmith.engines.sv2tts import checkpoints
    from voxmith.engines.sv2tts.bundle import SV2TTSModels
    from voxmith.engines.sv2tts.synthesizer_training import SynthesizerTrainingTask
    from voxmith.engines.sv2tts.training_data import LineCache, prepare_lines
    from voxmith.engines.sv2tts.training_settings import TrainingHparams
    from voxmith.engines.sv2tts.vocoder_training import VocoderTrainingTask, vocoder_item
    from voxmith.fsutil import atomic_write_text
    from voxmith.studio.studio import demo_voice_files
    from voxmith.training.optimizers import build_optimizer

    torch.set_num_threads(args.threads)
    encoder = checkpoints.resemblyzer_encoder()
    models, random_names = SV2TTSModels.for_training({"encoder.pt": encoder, "synthesizer.pt": None,
                                                      "vocoder.pt": None})
    clips = demo_voice_files()
    texts = [TEXT] * len(clips)
    hparams = TrainingHparams()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        lines, skipped = prepare_lines([TrainingLine(Path(c), t) for c, t in zip(clips, texts)], hparams=hparams,
                                       signal=models.signal, encoder=lambda: models.encoder.eval(),
                                       encoder_id="bench", cache=LineCache(Path(tmp)), what="training")
        prepare_s = time.perf_counter() - started
    assert lines, skipped

    def timed(task, clip: float) -> list:
        model = task.model.train()
        groups = task.parameter_groups(model, 1e-4)
        optimizer = build_optimizer(groups, "adamw", 1e-4, torch.device("cpu"))
        batch = task.batches(0)[0]
        times = []
        for step in range(args.steps + 1):
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            sum(model(batch).values()).backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            if step:  # the first is a warm-up
                times.append(time.perf_counter() - started)
        return times

    synth = SynthesizerTrainingTask(models.synthesizer, lines, [], hparams, len(lines), 0, -4.0)
    synth_times = timed(synth, 1.0)
    c = models.vocoder.config
    items = [vocoder_item(line.mel, line.wav, hop=c.hop_samples, bits=c.bits, mel_max_abs=c.mel_max_abs_value,
                          preemphasis=c.preemphasis) for line in lines]
    vocoder_times = timed(VocoderTrainingTask(models.vocoder, items, [], hparams.voc_seq_len, len(items), 0), 0.0)
    result = {
        "what": "seconds per fine-tuning step at the official sizes, random weights, CPU",
        "command": "benchmarks/sv2tts_train_speed.py " + " ".join(sys.argv[1:]),
        "threads": args.threads, "load_average": os.getloadavg(), "random_weights": random_names,
        "lines": [{"name": line.name, "frames": line.frames, "seconds": round(len(line.wav) / 16000, 2)}
                  for line in lines],
        "skipped": skipped, "prepare_lines_s": round(prepare_s, 2),
        "synthesizer_step_s": [round(t, 2) for t in synth_times],
        "synthesizer_step_median_s": round(statistics.median(synth_times), 2),
        "synthesizer_batch_lines": len(lines),
        "vocoder_step_s": [round(t, 3) for t in vocoder_times],
        "vocoder_step_median_s": round(statistics.median(vocoder_times), 3),
        "vocoder_batch_windows": len(items), "vocoder_window_samples": hparams.voc_seq_len,
    }
    atomic_write_text(RESULTS, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
