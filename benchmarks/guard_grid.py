"""What the intelligibility guard's check hears against what a listener gets, at fixed strengths.

For each shared voice: enroll as the engine does (the guard's own verdict is recorded), then for
every strengths row of GRID (network, ridge, warp, statistics; guard.Strengths) measure
- the guard's check: word errors on guard.CHECK_SENTENCES at the guard's rendering, at two seed
  sets (k and k + 1000), and the base voice's floor at both;
- what a user hears: DEV_SENTENCES spoken at the default settings, SECS against the held-out
  clip, Whisper WER and DistillMOS.
With the table, a guard policy (which row a voice ends on, from check errors alone) can be scored
offline for every voice at once. DEV_SENTENCES are used by no code path, test, check or
benchmark, so choosing a policy on them never tunes on the clone-quality benchmark's sentences.

    PYTHONPATH=src .venv/bin/python benchmarks/guard_grid.py --voices pat,emma --out FILE
    python benchmarks/guard_grid.py --analyse benchmarks/results/guard_grid.json

`--analyse` prints, from a finished table, the guard's own choice and the hindsight frontier: for
each weight `lam`, every voice's row maximising SECS + lam x MOS among the rows whose development
WER is within MAX_DEV_WER (what the best possible choice of strengths, made knowing the listener's
figures, could reach; an upper bound, since choosing among noisy figures flatters the choice).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

VOICES_DIR = Path(os.environ.get("VOXMITH_SHARED_VOICES",
                                 Path(__file__).resolve().parents[2] / "shared" / "voices"))
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg"}
DEV_SENTENCES = [
    "The library closes early on Sundays, so we should leave before four.",
    "She packed two sandwiches, an apple and a bottle of water for the long hike.",
    "Have you ever seen the northern lights from the top of a mountain?",
    "The old clock in the hallway stopped at exactly midnight last winter.",
    "After dinner, my brother washed the dishes while I dried them.",
    "Our train was delayed by twenty minutes because of snow on the tracks.",
]
MAX_DEV_WER = 0.08
NATURALNESS_COLLAPSE = 0.6  # guard.NATURALNESS_COLLAPSE (not imported: --analyse needs no voxmith)
LAMBDAS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 1.0)
# (network, ridge, warp, statistics)
GRID = [
    (1, 1, 1, 1), (0, 1, 1, 1), (0, 0, 1, 1),
    (1, 1, 0.75, 1), (0, 0, 0.75, 1),
    (1, 1, 0.5, 1), (0, 0, 0.5, 1),
    (1, 1, 0.25, 1), (0, 0, 0.25, 1),
    (1, 1, 0, 1), (0, 0, 0, 1), (0, 0, 0, 0.5),
]
# Engine 11's grid (`--grid 11`): scaled-joe bases keep little warp, so more rows between the
# guard's usual choice and the gentlest one, and statistics below a half.
GRID_ENGINE11 = [
    (1, 1, 1, 1), (0, 1, 1, 1), (0, 0, 1, 1), (0, 0, 0.5, 1), (0, 0, 0, 1), (0, 1, 0, 1), (0, 1, 0, 0.75),
    (0, 0, 0, 0.75), (0, 0, 0.5, 0.75), (0, 1, 0, 0.5), (0, 0, 0, 0.5), (0, 0, 0, 0.25),
]


def analyse(path: Path) -> None:
    """Print the guard's choice and the hindsight frontier of a finished table (see the docstring)."""
    rows = json.loads(Path(path).read_text())["rows"]
    voices = sorted({r["voice"] for r in rows})
    by_voice = {v: [r for r in rows if r["voice"] == v] for v in voices}
    keys = ("network", "ridge", "warp", "statistics")

    def wer(row):
        return row["dev_errors"] / row["dev_words"]

    def line(name, chosen):
        worst = max(chosen, key=wer)
        print(f"{name:24s} SECS {np.mean([r['secs'] for r in chosen]):.3f} "
              f"MOS {np.mean([r['mos'] for r in chosen]):.2f} WER {100 * np.mean([wer(r) for r in chosen]):4.1f} % "
              f"(worst {worst['voice']} {100 * wer(worst):.1f} %)  "
              + " ".join(f"{r['voice']}:{r['strengths']}" for r in chosen))

    guard_rows = [next((r for r in by_voice[v] if [r["guard_chose"][k] for k in keys] == r["strengths"]), None)
                  for v in voices]
    found = [r for r in guard_rows if r is not None]
    line(f"guard's choice ({len(found)}/{len(voices)})", found)
    for lam in LAMBDAS:
        chosen = []
        for v in voices:
            allowed = [r for r in by_voice[v] if wer(r) <= MAX_DEV_WER] or [min(by_voice[v], key=wer)]
            chosen.append(max(allowed, key=lambda r: r["secs"] + lam * r["mos"]))
        line(f"hindsight, lam {lam:g}", chosen)
    if all("enroll_sim" in r for r in rows):  # a `--grid 11` table: what enrollment could choose itself
        for lam in LAMBDAS:
            chosen = []
            for v in voices:
                passing = [r for r in by_voice[v] if r["check"] <= r["floor"] + r["tolerance"]]
                passing = passing or [min(by_voice[v], key=lambda r: r["check"])]
                top = max(r["enroll_mos"] for r in passing)
                passing = [r for r in passing if r["enroll_mos"] >= top - NATURALNESS_COLLAPSE]
                chosen.append(max(passing, key=lambda r: r["enroll_sim"] + lam * r["enroll_mos"]))
            line(f"best passing row, lam {lam:g}", chosen)


def listener_figures(engine, said, settings, spoken, held_out, encoder, mos_model, transcriber):
    """What a user hears of DEV_SENTENCES at conditioning `said`: per-sentence SECS against the held-out
    clip and DistillMOS, and Whisper's word errors with the word count."""
    from voxmith.engines.piper_vc.intelligibility import word_errors
    from voxmith.speaker import cosine_similarity

    secs, mos, errors, words = [], [], 0, 0
    for k, (sentence, text) in enumerate(zip(DEV_SENTENCES, spoken)):
        take = engine.synthesize(text, said, settings, seed=k)[0]
        secs.append(cosine_similarity(encoder.embed(take.samples, take.sample_rate_hz), held_out))
        mos.append(mos_model.score(take.samples, take.sample_rate_hz))
        errors += word_errors(sentence, transcriber.transcribe(take.samples, take.sample_rate_hz, language="en").text)
        words += len(sentence.split())
    return secs, mos, errors, words


def _engine11_rows(name, cond, chosen, enroll_s, speak, conditioning_at, engine, settings, held_out, encoder,
                   mos_model, transcriber, spoken, out, earlier):
    """`--grid 11`: each GRID_ENGINE11 row's check (seed set 0), the enrollment scores of the same
    takes (GE2E similarity to the enrolled embedding, DistillMOS) and the listener's figures."""
    from voxmith.engines.piper_vc import guard, world
    from voxmith.speaker import cosine_similarity

    said_once = {}

    def remembered(text, seed, strengths):
        key = (text, seed, strengths)
        if key not in said_once:
            said_once[key] = speak(text, seed, strengths)
        return said_once[key]

    target = np.asarray(cond["target_embedding"], np.float32)
    print(f"{name}: enrolled in {enroll_s:.0f}s, base {cond.get('base_voice', 'joe')}, kept {chosen['strengths']}, "
          f"floor {chosen['base_errors']} + tolerance {chosen['tolerance']}", flush=True)
    rows = []
    for network, ridge, warp, statistics in GRID_ENGINE11:
        strengths = guard.Strengths(network=network, ridge=ridge, warp=warp, statistics=statistics)
        check = guard.heard_errors(remembered, guard.CHECK_SENTENCES, strengths)[0]
        heard = [remembered(text, k, strengths) for k, text in enumerate(guard.CHECK_SENTENCES)]
        secs, mos, errors, words = listener_figures(engine, conditioning_at(strengths), settings, spoken, held_out,
                                                    encoder, mos_model, transcriber)
        row = {"voice": name, "strengths": [network, ridge, warp, statistics], "check": check,
               "floor": chosen["base_errors"], "tolerance": chosen["tolerance"],
               "enroll_sim": float(np.mean([cosine_similarity(encoder.embed(a, world.SAMPLE_RATE_HZ), target)
                                            for a in heard])),
               "enroll_mos": float(np.mean([mos_model.score(a, world.SAMPLE_RATE_HZ) for a in heard])),
               "secs": float(np.mean(secs)), "mos": float(np.mean(mos)), "dev_errors": errors, "dev_words": words,
               "base": str(cond.get("base_voice", "joe")), "guard_chose": chosen["strengths"], "enroll_s": enroll_s}
        rows.append(row)
        print(f"  {row['strengths']} check {check} enrollment {row['enroll_sim']:.3f} / {row['enroll_mos']:.2f} "
              f"SECS {row['secs']:.3f} dev errors {errors}/{words} MOS {row['mos']:.2f}", flush=True)
        Path(out).write_text(json.dumps({"dev_sentences": DEV_SENTENCES, "grid": GRID_ENGINE11,
                                         "rows": earlier + rows}, indent=1))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="")
    ap.add_argument("--out")
    ap.add_argument("--analyse", metavar="FILE", help="print the frontier of a finished table and stop")
    ap.add_argument("--enrollment-scores", action="store_true",
                    help="instead of the check and the listener's figures, what enrollment itself could measure at "
                         "each row: the check sentences' similarity to the voice's enrolled embedding and MOS")
    ap.add_argument("--grid", choices=("8", "11"), default="8",
                    help="8: the engine-8 rows at two seed sets; 11: GRID_ENGINE11 at one seed set, with the "
                         "check sentences' enrollment scores measured from the same takes (one pass)")
    args = ap.parse_args()
    if args.analyse:
        analyse(Path(args.analyse))
        return 0
    if not args.out:
        ap.error("--out is needed to measure")
    names = [v for v in args.voices.split(",") if v] or sorted(p.name for p in VOICES_DIR.iterdir() if p.is_dir())

    from voxmith.asr import get_transcriber
    from voxmith.audio import load_audio, to_mono
    from voxmith.engines.piper_vc import PiperVCEngine, guard
    from voxmith.quality import get_naturalness_model
    from voxmith.speaker import cosine_similarity, get_speaker_encoder
    from voxmith.text import normalize_text

    captured = {}

    class Recording(PiperVCEngine):
        def _guard_speaker(self, conditioning_at, rate, base_name="joe", takes=None):
            speak = super()._guard_speaker(conditioning_at, rate, base_name, takes)
            captured.update(conditioning_at=conditioning_at, speak=speak)
            return speak

    engine = Recording(device="cpu")
    settings = engine.settings_class()
    encoder = get_speaker_encoder("cpu")
    mos_model = get_naturalness_model()
    transcriber = get_transcriber()
    spoken = [normalize_text(s) for s in DEV_SENTENCES]
    rows = []
    for name in names:
        files = sorted(p for p in (VOICES_DIR / name).iterdir() if p.suffix.lower() in AUDIO_EXT)
        clips = [load_audio(p) for p in files]
        held = clips[-1]
        held_out = encoder.embed(to_mono(held.samples), held.sample_rate_hz)
        t = time.perf_counter()
        cond = engine.prepare_conditioning(clips[:-1])
        enroll_s = time.perf_counter() - t
        chosen = guard.summary(cond)
        speak, conditioning_at = captured["speak"], captured["conditioning_at"]

        def shifted(text, seed, strengths):
            return speak(text, seed + 1000, strengths)

        if args.grid == "11":
            rows += _engine11_rows(name, cond, chosen, enroll_s, speak, conditioning_at, engine, settings, held_out,
                                   encoder, mos_model, transcriber, spoken, args.out, rows)
            continue
        floors = [0, 0] if args.enrollment_scores else [
            guard.heard_errors(s, guard.CHECK_SENTENCES, None)[0] for s in (speak, shifted)]
        print(f"{name}: enrolled in {enroll_s:.0f}s, guard {chosen['strengths']} errors {chosen['errors']} "
              f"floor {chosen['base_errors']}; floors at seed sets 0/1000: {floors}", flush=True)
        for network, ridge, warp, statistics in GRID:
            strengths = guard.Strengths(network=network, ridge=ridge, warp=warp, statistics=statistics)
            if args.enrollment_scores:
                target = np.asarray(cond["target_embedding"], np.float32)
                heard = [s(text, k, strengths) for s in (speak, shifted) for k, text in enumerate(guard.CHECK_SENTENCES)]
                rate = 22050  # world.SAMPLE_RATE_HZ: what the guard's speaker returns
                row = {"voice": name, "strengths": [network, ridge, warp, statistics],
                       "enroll_sim": float(np.mean([cosine_similarity(encoder.embed(a, rate), target) for a in heard])),
                       "enroll_mos": float(np.mean([mos_model.score(a, rate) for a in heard]))}
                rows.append(row)
                print(f"  {row}", flush=True)
                Path(args.out).write_text(json.dumps({"rows": rows}, indent=1))
                continue
            check = [guard.heard_errors(s, guard.CHECK_SENTENCES, strengths)[0] for s in (speak, shifted)]
            secs, mos, errors, words = listener_figures(engine, conditioning_at(strengths), settings, spoken,
                                                        held_out, encoder, mos_model, transcriber)
            row = {"voice": name, "strengths": [network, ridge, warp, statistics], "check": check,
                   "floor": floors, "secs": float(np.mean(secs)), "dev_errors": errors, "dev_words": words,
                   "mos": float(np.mean(mos)), "guard_chose": chosen["strengths"], "guard_errors": chosen["errors"],
                   "enroll_s": enroll_s}
            rows.append(row)
            print(f"  {row['strengths']} check {check} SECS {row['secs']:.3f} dev errors {errors}/{words} "
                  f"MOS {row['mos']:.2f}", flush=True)
            Path(args.out).write_text(json.dumps({"dev_sentences": DEV_SENTENCES, "grid": GRID, "rows": rows},
                                                 indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
