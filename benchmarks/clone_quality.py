"""Clone-quality benchmark for the piper-vc engine.

For each voice folder in /work/shared/voices: enroll on all clips but the last, synthesise a few
fixed sentences, and score them:
- SECS: cosine of GE2E embeddings (voxmith.speaker) of each output vs the held-out last clip;
- WER: faster-whisper (bundled base model) transcript vs the sentence, word edit distance after
  lowercasing and stripping punctuation, pooled over the voice's sentences;
- RTF: synthesis wall time / audio duration, warm (after one untimed synthesis);
- enrollment time, and cold start (fresh process: import, load engine, synthesise one sentence
  from cached conditioning).
Prints a table and writes benchmarks/results/clone_quality.json.

    .venv/bin/python benchmarks/clone_quality.py [--voices tom,emma] [--sentences 2]
        [--ridge-mix 0,0.5] [--cov-mix 0,0.5,1]   # several values = several rows per voice
        [--cov-nucleus 0,1]                       # (every combination) from one enrollment;
                                                  # cov_nucleus -1 = the enrolled value
        [--postnet-mix 0,1]                       # enrollment-time residual network strength
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VOICES_DIR = Path(__file__).resolve().parents[2] / "shared" / "voices"
RESULTS = Path(__file__).resolve().parent / "results" / "clone_quality.json"
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg"}
SENTENCES = [
    "The weather was pleasant, so we decided to walk along the river after lunch.",
    "Please remember to bring your notebook and a pen to the meeting tomorrow.",
    "Scientists have discovered a new species of frog deep in the rainforest.",
    "I never expected the old library to be so quiet on a Saturday afternoon.",
]

COLD_START = """
import sys, time
t0 = time.perf_counter()
import numpy as np
from voxmith.engines.piper_vc import PiperVCEngine
e = PiperVCEngine(device="cpu")
cond = dict(np.load(sys.argv[1]))
e.synthesize("Hello there, how are you today?", cond, e.settings_class(), seed=1)
print(time.perf_counter() - t0)
"""


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(errors, reference words), with the studio's own normalisation and alignment."""
    from voxmith.text import word_error_rate

    errors = word_error_rate(reference, hypothesis)
    return errors.substitutions + errors.deletions + errors.insertions, errors.reference_words


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="", help="comma-separated voice folder names")
    ap.add_argument("--sentences", type=int, default=3)
    ap.add_argument("--ridge-mix", default="", help="comma-separated ridge_mix values to compare")
    ap.add_argument("--cov-mix", default="", help="comma-separated cov_mix values to compare")
    ap.add_argument("--cov-nucleus", default="", help="comma-separated cov_nucleus values")
    ap.add_argument("--postnet-mix", default="", help="comma-separated postnet_mix values")
    ap.add_argument("--no-cold-start", action="store_true")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to benchmark.")
        return 0
    names = [v for v in args.voices.split(",") if v] or sorted(
        p.name for p in VOICES_DIR.iterdir() if p.is_dir())
    sentences = SENTENCES[: max(1, args.sentences)]

    from voxmith.audio import load_audio
    from voxmith.engines.piper_vc import PiperVCEngine
    from voxmith.engines.piper_vc.intelligibility import transcribe_clip
    from voxmith.speaker import cosine_similarity, get_speaker_encoder

    engine = PiperVCEngine(device="cpu")
    base = engine.settings_class()
    mixes = [(float(m), float(c), float(n), float(q))
             for m in ([x for x in args.ridge_mix.split(",") if x] or [base.ridge_mix])
             for c in ([x for x in args.cov_mix.split(",") if x] or [base.cov_mix])
             for n in ([x for x in args.cov_nucleus.split(",") if x] or [base.cov_nucleus])
             for q in ([x for x in args.postnet_mix.split(",") if x] or [base.postnet_mix])]
    encoder = get_speaker_encoder("cpu")
    rows, cold_start_s, cond_file = [], None, None
    for name in names:
        files = sorted(p for p in (VOICES_DIR / name).iterdir() if p.suffix.lower() in AUDIO_EXT)
        if len(files) < 2:
            print(f"skipping {name}: needs at least 2 clips")
            continue
        clips = [load_audio(p) for p in files]
        held_out = encoder.embed(clips[-1].samples, clips[-1].sample_rate_hz)
        t = time.perf_counter()
        cond = engine.prepare_conditioning(clips[:-1])
        enroll_s = time.perf_counter() - t
        if cond_file is None:
            cond_file = Path(tempfile.mkdtemp()) / "cond.npz"
            np.savez(cond_file, **cond)
        engine.synthesize("Warm up.", cond, base, seed=0)  # untimed: warm caches
        for mix, cov, nuc, post in mixes:
            settings = engine.settings_class.from_dict({**base.to_dict(), "ridge_mix": mix, "cov_mix": cov,
                                                        "cov_nucleus": nuc, "postnet_mix": post})
            secs, errors, n_words, synth_s, audio_s = [], 0, 0, 0.0, 0.0
            for k, sentence in enumerate(sentences):
                t = time.perf_counter()
                cand = engine.synthesize(sentence, cond, settings, seed=k)[0]
                synth_s += time.perf_counter() - t
                audio_s += cand.duration_s
                secs.append(cosine_similarity(encoder.embed(cand.samples, cand.sample_rate_hz), held_out))
                wrong, count = word_errors(sentence, transcribe_clip(cand.samples, cand.sample_rate_hz))
                errors += wrong
                n_words += count
            row = {"voice": name, "ridge_mix": mix, "cov_mix": cov, "cov_nucleus": nuc, "postnet_mix": post,
                   "enrolled_nucleus": float(cond.get("conv.cov_nucleus", -1.0)), "secs": float(np.mean(secs)),
                   "wer": errors / max(n_words, 1), "rtf": synth_s / max(audio_s, 1e-9),
                   "enroll_s": enroll_s, "warp": float(cond["conv.warp"]), "rate": float(cond["rate"]),
                   "enroll_clips": len(clips) - 1}
            rows.append(row)
            print(f"{name:16s} mix={mix:.2f} cov={cov:.2f} nuc={nuc:.2f} post={post:.2f} SECS={row['secs']:.3f} WER={row['wer']*100:5.1f}% "
                  f"RTF={row['rtf']:.3f} enroll={enroll_s:5.1f}s warp={row['warp']:+.3f}", flush=True)
    if not args.no_cold_start and cond_file is not None:
        out = subprocess.run([sys.executable, "-c", COLD_START, str(cond_file)],
                             capture_output=True, text=True)
        try:
            cold_start_s = float(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            print(out.stderr[-2000:])
    summary = []
    print(f"\n{'ridge_mix':>9s} {'cov_mix':>7s} {'cov_nuc':>7s} {'postnet':>7s} {'voices':>6s} {'SECS':>6s} {'WER%':>6s} {'RTF':>6s} {'enroll_s':>8s}")
    for mix, cov, nuc, post in mixes:
        sel = [r for r in rows if r["ridge_mix"] == mix and r["cov_mix"] == cov and r["cov_nucleus"] == nuc
               and r["postnet_mix"] == post]
        if not sel:
            continue
        # Means over voices; every voice says the same sentences, so per-voice WERs weigh equally.
        s = {"ridge_mix": mix, "cov_mix": cov, "cov_nucleus": nuc, "postnet_mix": post, "voices": len(sel),
             "secs": float(np.mean([r["secs"] for r in sel])),
             "wer": float(np.mean([r["wer"] for r in sel])),
             "worst_wer": float(np.max([r["wer"] for r in sel])),
             "rtf": float(np.mean([r["rtf"] for r in sel])),
             "enroll_s": float(np.mean([r["enroll_s"] for r in sel]))}
        summary.append(s)
        print(f"{mix:9.2f} {cov:7.2f} {nuc:7.2f} {post:7.2f} {s['voices']:6d} {s['secs']:6.3f} {s['wer']*100:6.1f} {s['rtf']:6.3f} "
              f"{s['enroll_s']:8.1f}")
    if cold_start_s is not None:
        print(f"cold start (fresh process, cached conditioning, one sentence): {cold_start_s:.2f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"sentences": sentences, "rows": rows, "summary": summary,
                                          "cold_start_s": cold_start_s}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
