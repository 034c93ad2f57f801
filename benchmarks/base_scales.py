"""What joe scaled as piper-vc's base voice gives a listener, per shared voice and base.

Each scale (base_voice.ScaledJoe) fixed, and enrollment's own choice among them.

For every voice and every base named in --bases (a name from base_voice.JOE_VOICES enrolls with
that base alone; `auto` lets enrollment choose among enrollment.BASE_CANDIDATES; `cached:DIR` reads
DIR/VOICE.vVERSION.npz, e.g. an older engine's conditionings), the voice's clips but the last are
enrolled at today's defaults, then guard_grid.DEV_SENTENCES (used by no code path, test or check)
are spoken at the default settings: SECS against the held-out last clip, Whisper's word errors,
DistillMOS. `raw_secs`/`raw_mos`: the unconverted base voice on the first two sentences.

    PYTHONPATH=src .venv/bin/python benchmarks/base_scales.py --voices emma,pat --bases joe,joe@1.20,auto \
        --cond-dir /tmp/base-scales --out benchmarks/results/base_scales.json
    PYTHONPATH=src .venv/bin/python benchmarks/base_scales.py --summary benchmarks/results/base_scales.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clone_quality import AUDIO_EXT, VOICES_DIR, word_errors  # noqa: E402
from guard_grid import DEV_SENTENCES  # noqa: E402


def summarise(rows: list) -> None:
    by_base: dict = {}
    for r in rows:
        by_base.setdefault(r["base"], []).append(r)
    print(f"{'base':48s} {'voices':>6s} {'SECS':>6s} {'WER%':>6s} {'MOS':>5s}  lowest SECS / MOS / worst WER")
    for base, sel in by_base.items():
        lo_s, lo_m, hi_w = (min(sel, key=lambda r: r["secs"]), min(sel, key=lambda r: r["mos"]),
                            max(sel, key=lambda r: r["wer"]))
        print(f"{base:48s} {len(sel):6d} {np.mean([r['secs'] for r in sel]):6.3f} "
              f"{100 * np.mean([r['wer'] for r in sel]):6.1f} {np.mean([r['mos'] for r in sel]):5.2f}  "
              f"{lo_s['voice']} {lo_s['secs']:.3f} / {lo_m['voice']} {lo_m['mos']:.2f} / {hi_w['voice']} {100 * hi_w['wer']:.1f} %")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="")
    ap.add_argument("--bases", default="auto")
    ap.add_argument("--cond-dir", default="", help="cache enrollments as DIR/VOICE.BASE.vVERSION.npz")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "base_scales_run.json"),
                    help="results (JSON, rewritten after every row); '' for none")
    ap.add_argument("--summary", nargs="*", help="print the table of these result files and stop")
    args = ap.parse_args()
    if args.summary is not None:
        summarise([r for f in args.summary for r in json.loads(Path(f).read_text())["rows"]])
        return 0
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to benchmark.")
        return 0
    from voxmith.audio import load_audio, to_mono
    from voxmith.asr import get_transcriber
    from voxmith.engines.piper_vc import PiperVCEngine, base_voice, enrollment
    from voxmith.quality import get_naturalness_model
    from voxmith.speaker import cosine_similarity, get_speaker_encoder
    from voxmith.text import normalize_text

    engine = PiperVCEngine(device="cpu")
    settings = engine.settings_class()
    encoder, mos_model = get_speaker_encoder("cpu"), get_naturalness_model()
    spoken = [normalize_text(s) for s in DEV_SENTENCES]
    defaults = enrollment.BASE_CANDIDATES
    names = [v for v in args.voices.split(",") if v] or sorted(p.name for p in VOICES_DIR.iterdir() if p.is_dir())
    rows = []
    for name in names:
        clips = [load_audio(p) for p in sorted((VOICES_DIR / name).iterdir()) if p.suffix.lower() in AUDIO_EXT]
        held = clips[-1]
        held_out = encoder.embed(to_mono(held.samples), held.sample_rate_hz)
        for base in [b for b in args.bases.split(",") if b]:
            t = time.perf_counter()
            if base.startswith("cached:"):
                cond = dict(np.load(Path(base[len("cached:"):]) / f"{name}.v{engine.version}.npz"))
            else:
                cached = Path(args.cond_dir) / f"{name}.{base}.v{engine.version}.npz" if args.cond_dir else None
                if cached is not None and cached.is_file():
                    cond = dict(np.load(cached))
                else:
                    enrollment.BASE_CANDIDATES = defaults if base == "auto" else (base,)
                    cond = engine.prepare_conditioning(clips[:-1])
                    if cached is not None:
                        cached.parent.mkdir(parents=True, exist_ok=True)
                        np.savez(cached, **cond)
            enroll_s = time.perf_counter() - t
            chosen = str(cond.get("base_voice", base_voice.JOE))
            secs, mos, errors, words, raw_secs, raw_mos = [], [], 0, 0, [], []
            for k, (sentence, text) in enumerate(zip(DEV_SENTENCES, spoken)):
                take = engine.synthesize(text, cond, settings, seed=k)[0]
                secs.append(cosine_similarity(encoder.embed(take.samples, take.sample_rate_hz), held_out))
                mos.append(mos_model.score(take.samples, take.sample_rate_hz))
                heard = get_transcriber().transcribe(take.samples, take.sample_rate_hz, language="en").text
                wrong, count = word_errors(sentence, heard)
                errors, words = errors + wrong, words + count
                if k < 2:
                    raw = base_voice.get_base_voice(chosen).speak(text, seed=k, noise_scale=settings.noise_scale,
                                                                  noise_w=settings.noise_w)
                    raw_secs.append(cosine_similarity(encoder.embed(raw.samples, 22050), held_out))
                    raw_mos.append(mos_model.score(raw.samples, 22050))
            row = {"voice": name, "base": base, "chosen": chosen, "secs": float(np.mean(secs)),
                   "mos": float(np.mean(mos)), "wer": errors / max(words, 1), "raw_secs": float(np.mean(raw_secs)),
                   "raw_mos": float(np.mean(raw_mos)), "enroll_s": enroll_s, "warp": float(cond["conv.warp"]),
                   "rate": float(cond["rate"]),
                   "guard": {k: np.asarray(v).tolist() for k, v in cond.items()
                             if k.startswith("guard.") and np.asarray(v).size < 6}}
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items() if k != "guard"}),
                  flush=True)
            if args.out:
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps({"engine_version": engine.version,
                                                      "sentences": DEV_SENTENCES, "rows": rows}, indent=1))
    summarise(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
