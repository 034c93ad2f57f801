"""Clone-quality benchmark for the piper-vc engine, on every shared voice.

For each voice folder in ../shared/voices: enroll on all clips but the last, synthesise the
sentences below (one take each, seed = sentence index, as `voxmith speak -n 1` would), and score:
- SECS: cosine of GE2E embeddings (voxmith.speaker) of each output vs the held-out last clip;
- WER: faster-whisper (bundled base model) transcript vs the sentence, the studio's own
  normalisation and alignment, pooled over the voice's sentences;
- MOS: DistillMOS (voxmith.quality), mean over the sentences; the held-out clip's own MOS and
  joe's unconverted MOS are printed as references;
- RTF: synthesis wall time / audio duration, warm (after one untimed synthesis);
- enrollment time (with the seconds of clips it enrolled on), and cold start (fresh process:
  import, load engine, synthesise one sentence from cached conditioning).
The sentences are new to the engine: no code path, threshold or default was tuned on them (the
enrollment's calibration sentences and the tests' sentences are different ones). Prints a table
per voice, the means and the worst voice, and writes benchmarks/results/clone_quality.json.

    .venv/bin/python benchmarks/clone_quality.py [--voices tom,emma] [--sentences 3]
        [--set postnet_mix=0,1 --set ridge_mix=0.3]   # several values = several rows per voice
        [--out FILE]                                  # (every combination) from one enrollment
        [--rates 1.2,1.0]  # also speak at these rates (conditioning's `rate` replaced), same enrollment
        [--seeds 3]        # each sentence at this many seeds (k, k + 1000, ...): more words, less noise
        [--config '{"postnet_mix": 0}' --config '{"unconverted": true}']  # explicit rows (repeatable),
                           # after the --set grid; "unconverted": the base voice alone at the voice's rate
        [--cond-dir DIR]   # keep each voice's conditioning there (DIR/VOICE.vENGINE.npz), reuse it when present
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VOICES_DIR = Path(os.environ.get("VOXMITH_SHARED_VOICES",
                                 Path(__file__).resolve().parents[2] / "shared" / "voices"))
RESULTS = Path(__file__).resolve().parent / "results" / "clone_quality.json"
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg"}
# Varied on purpose: a question, numbers and money, a date and time, a long sentence with
# clauses, names and plain narration.
SENTENCES = [
    "Could you tell me where the nearest train station is?",
    "The invoice lists 42 items, for a total of $1,250, due on March 3rd.",
    "When the storm finally passed, the villagers walked down to the harbour to count the damaged "
    "boats, and to their surprise almost every one of them was still afloat.",
    "My grandmother grows tomatoes, peppers and beans in a small garden behind her house.",
    "Why did nobody answer the phone when I called this morning?",
    "At half past seven, the orchestra began to play a quiet piece by a young composer.",
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


def setting_grid(pairs: list[str]) -> list[dict]:
    """--set KEY=V1,V2 ... -> every combination as {KEY: value} (one empty dict without --set)."""
    keys, values = [], []
    for pair in pairs:
        key, _, raw = pair.partition("=")
        keys.append(key.strip())
        values.append([json.loads(v) if v not in ("true", "false") else v == "true" for v in raw.split(",")])
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)] or [{}]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="", help="comma-separated voice folder names")
    ap.add_argument("--sentences", type=int, default=len(SENTENCES))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                    help="engine setting values to compare (repeatable)")
    ap.add_argument("--no-cold-start", action="store_true")
    ap.add_argument("--rates", default="", help="comma-separated speaking rates to compare with the enrolled one")
    ap.add_argument("--seeds", type=int, default=1, help="takes per sentence, at seeds k + 1000 j")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--config", action="append", default=[], metavar="JSON",
                    help="one row's settings as a JSON object (repeatable; added after the --set grid)")
    ap.add_argument("--cond-dir", default="", help="cache conditionings as DIR/VOICE.vENGINE_VERSION.npz (reused when present)")
    ap.add_argument("--base-voices", default="",
                    help="comma-separated base voices enrollment may choose from (default: the engine's "
                         "enrollment.BASE_CANDIDATES), e.g. joe or joe,kokoro:jf_alpha")
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to benchmark.")
        return 0
    names = [v for v in args.voices.split(",") if v] or sorted(
        p.name for p in VOICES_DIR.iterdir() if p.is_dir())
    sentences = SENTENCES[: max(1, args.sentences)]

    from voxmith.audio import load_audio, to_mono
    from voxmith.asr import get_transcriber
    from voxmith.engines.base import Candidate
    from voxmith.engines.piper_vc import PiperVCEngine, enrollment
    from voxmith.engines.piper_vc.base_voice import get_base_voice
    from voxmith.quality import get_naturalness_model
    from voxmith.speaker import cosine_similarity, get_speaker_encoder
    from voxmith.text import normalize_text

    def transcribe(samples, rate) -> str:
        return get_transcriber().transcribe(samples, rate, language="en").text

    if args.base_voices:
        enrollment.BASE_CANDIDATES = tuple(args.base_voices.split(","))
    engine = PiperVCEngine(device="cpu")
    base = engine.settings_class()
    grid = (setting_grid(args.set) if args.set or not args.config else []) + [json.loads(c) for c in args.config]
    rates = [None] + [float(r) for r in args.rates.split(",") if r]  # None: as enrolled
    encoder = get_speaker_encoder("cpu")
    mos_model = get_naturalness_model()
    spoken = [normalize_text(s) for s in sentences]  # what the studio hands the engine
    joe = [get_base_voice().speak(s, seed=0) for s in spoken]
    joe_mos = float(np.mean([mos_model.score(o.samples, 22050) for o in joe]))
    print(f"reference: joe unconverted MOS {joe_mos:.2f}", flush=True)
    rows, cond_file = [], None
    for name in names:
        files = sorted(p for p in (VOICES_DIR / name).iterdir() if p.suffix.lower() in AUDIO_EXT)
        if len(files) < 2:
            print(f"skipping {name}: needs at least 2 clips")
            continue
        clips = [load_audio(p) for p in files]
        held = clips[-1]
        held_out = encoder.embed(to_mono(held.samples), held.sample_rate_hz)
        held_mos = mos_model.score(to_mono(held.samples), held.sample_rate_hz)
        t = time.perf_counter()
        # Keyed by engine version: an older engine's conditioning is enrolled again, never reused.
        cached = Path(args.cond_dir) / f"{name}.v{engine.version}.npz" if args.cond_dir else None
        if cached is not None and cached.is_file():
            cond = dict(np.load(cached))
        else:
            cond = engine.prepare_conditioning(clips[:-1])
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cached, **cond)
        enroll_s = time.perf_counter() - t
        if cond_file is None:
            cond_file = Path(tempfile.mkdtemp()) / "cond.npz"
            np.savez(cond_file, **cond)
        engine.synthesize("Warm up.", cond, base, seed=0)  # untimed: warm caches
        for overrides, rate in itertools.product(grid, rates):
            unconverted = bool(overrides.get("unconverted", False))
            settings = engine.settings_class.from_dict(
                {**base.to_dict(), **{k: v for k, v in overrides.items() if k != "unconverted"}})
            said = cond if rate is None else dict(cond, rate=np.asarray(rate, np.float64))
            if rate is not None:
                overrides = {**overrides, "rate": rate}
            secs, mos, errors, n_words, synth_s, audio_s, heard = [], [], 0, 0, 0.0, 0.0, []
            takes = [(k + 1000 * j, sentence, text) for j in range(max(1, args.seeds))
                     for k, (sentence, text) in enumerate(zip(sentences, spoken))]
            for k, sentence, text in takes:
                t = time.perf_counter()
                if unconverted:  # the base voice alone, at the voice's rate and Piper settings, no jitter
                    voice = get_base_voice(str(said.get("base_voice", "joe")))
                    out = voice.speak(text, seed=k, noise_scale=settings.noise_scale, noise_w=settings.noise_w,
                                      length_scale=settings.length_scale * float(said.get("rate", 1.0)))
                    cand = Candidate(samples=out.samples, sample_rate_hz=22050, seed=k, details={})
                else:
                    cand = engine.synthesize(text, said, settings, seed=k)[0]
                synth_s += time.perf_counter() - t
                audio_s += cand.duration_s
                secs.append(cosine_similarity(encoder.embed(cand.samples, cand.sample_rate_hz), held_out))
                mos.append(mos_model.score(cand.samples, cand.sample_rate_hz))
                transcript = transcribe(cand.samples, cand.sample_rate_hz)
                wrong, count = word_errors(sentence, transcript)
                errors += wrong
                n_words += count
                heard.append(transcript)
            row = {"voice": name, "settings": overrides, "secs": float(np.mean(secs)),
                   "wer": errors / max(n_words, 1), "mos": float(np.mean(mos)), "mos_min": float(np.min(mos)),
                   "rtf": synth_s / max(audio_s, 1e-9), "enroll_s": enroll_s,
                   "enroll_audio_s": float(sum(c.duration_s for c in clips[:-1])),
                   "enroll_clips": len(clips) - 1, "held_out_mos": held_mos,
                   "warp": float(cond["conv.warp"]), "rate": float(said["rate"]), "seeds": max(1, args.seeds),
                   "base_voice": str(cond.get("base_voice", "joe")),
                   "base_choice": str(cond.get("base_choice.reason", "")),
                   "guard": {k: np.asarray(v).tolist() for k, v in cond.items() if k.startswith("guard.")},
                   "transcripts": heard}
            rows.append(row)
            # Written after every voice, so an interrupted run still leaves its finished voices.
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"engine_version": engine.version, "sentences": sentences,
                                                  "joe_mos": joe_mos, "rows": rows, "partial": True}, indent=2))
            print(f"{name:15s} {json.dumps(overrides):28s} SECS={row['secs']:.3f} WER={row['wer']*100:5.1f}% "
                  f"MOS={row['mos']:.2f} (min {row['mos_min']:.2f}, real {held_mos:.2f}) RTF={row['rtf']:.3f} "
                  f"enroll={enroll_s:5.1f}s/{row['enroll_audio_s']:.0f}s warp={row['warp']:+.3f} "
                  f"base={row['base_voice']}", flush=True)
    cold_start_s = None
    if not args.no_cold_start and cond_file is not None:
        out = subprocess.run([sys.executable, "-c", COLD_START, str(cond_file)], capture_output=True, text=True)
        try:
            cold_start_s = float(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            print(out.stderr[-2000:])
    summary = []
    print(f"\n{'settings':28s} {'voices':>6s} {'SECS':>6s} {'WER%':>6s} {'MOS':>5s} {'RTF':>6s} {'enroll_s':>8s}  worst voice (WER)")
    for overrides in sorted({json.dumps(r["settings"], sort_keys=True) for r in rows}):
        overrides = json.loads(overrides)
        sel = [r for r in rows if r["settings"] == overrides]
        if not sel:
            continue
        worst = max(sel, key=lambda r: r["wer"])
        # Means over voices; every voice says the same sentences, so per-voice WERs weigh equally.
        s = {"settings": overrides, "voices": len(sel),
             "secs": float(np.mean([r["secs"] for r in sel])), "min_secs": float(np.min([r["secs"] for r in sel])),
             "wer": float(np.mean([r["wer"] for r in sel])), "worst_wer": worst["wer"], "worst_voice": worst["voice"],
             "mos": float(np.mean([r["mos"] for r in sel])), "min_mos": float(np.min([r["mos"] for r in sel])),
             "rtf": float(np.mean([r["rtf"] for r in sel])),
             "enroll_s": float(np.mean([r["enroll_s"] for r in sel])),
             "enroll_s_per_30s_audio": float(np.mean([30 * r["enroll_s"] / r["enroll_audio_s"] for r in sel]))}
        summary.append(s)
        print(f"{json.dumps(overrides):28s} {s['voices']:6d} {s['secs']:6.3f} {s['wer']*100:6.1f} {s['mos']:5.2f} "
              f"{s['rtf']:6.3f} {s['enroll_s']:8.1f}  {s['worst_voice']} ({s['worst_wer']*100:.1f} %)")
    if cold_start_s is not None:
        print(f"cold start (fresh process, cached conditioning, one sentence): {cold_start_s:.2f} s")
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(f"load average while measured: {' '.join(load)} (2 cores)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "engine_version": engine.version, "sentences": sentences, "joe_mos": joe_mos, "rows": rows,
        "summary": summary, "cold_start_s": cold_start_s, "load_average": load}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
