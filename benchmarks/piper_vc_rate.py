"""How piper-vc's speaking-rate estimate compares with like-for-like measures, on every shared voice.

Enrollment sets the voice's `rate` (Piper's length_scale multiplier) to the median over its clips
of (target voiced frames) / (joe's voiced frames for the same words), clipped to
enrollment.RATE_RANGE. The target's F0 comes from Harvest, joe's from DIO + StoneMask, and the two
trackers do not mark the same frames voiced. For each voice's enrollment clips (all but the last,
as benchmarks/clone_quality.py enrolls) this prints the ratio as enrollment computes it next to
ratios that measure both sides the same way:
- harvest/dio: what enrollment uses (parallel.ParallelUtterance.rate);
- harvest/harvest and dio/dio: the same tracker on both sides;
- active: frames within ACTIVE_DB of the clip's loud frames (pauses removed), same rule both sides;
- trimmed: trimmed durations, pauses included (an upper bound for real clips);
- words: summed Whisper word durations (faster-whisper word timestamps), gaps between words out;
and, on joe's own speech, Harvest's voiced frames / DIO's (the tracker bias by itself). First, a
check with a known answer: joe at length_scale 0.9 and 1.2 as the "target" against joe at 1.0,
on KNOWN_SENTENCES; a sound measure returns about 0.9 and 1.2 there.
Writes benchmarks/results/piper_vc_rate.json.

    .venv/bin/python benchmarks/piper_vc_rate.py [--voices tom,emma]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

VOICES_DIR = Path(os.environ.get("VOXMITH_SHARED_VOICES",
                                 Path(__file__).resolve().parents[2] / "shared" / "voices"))
RESULTS = Path(__file__).resolve().parent / "results" / "piper_vc_rate.json"
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg"}
# Plain sentences used by no benchmark, test or check elsewhere.
KNOWN_SENTENCES = ("After lunch we carried the old chairs up to the attic and left them there.",
                   "Nobody on the bus noticed that the driver had taken a different road home.")
ACTIVE_DB = 30.0  # a frame is speech when its energy is within this of the clip's 95th percentile


def active_frames(samples: np.ndarray, rate_hz: int, frame_ms: float = 10.0) -> int:
    hop = int(rate_hz * frame_ms / 1000)
    n = samples.size // hop
    if n == 0:
        return 0
    frames = samples[: n * hop].reshape(n, hop).astype(np.float64)
    db = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-12)
    return int((db > np.percentile(db, 95) - ACTIVE_DB).sum())


def word_seconds(samples: np.ndarray, rate_hz: int) -> float:
    """Seconds inside words by Whisper's word timestamps (private model handle: diagnostic only)."""
    from voxmith.asr import get_transcriber
    from voxmith.asr.whisper import WHISPER_RATE_HZ
    from voxmith.audio import resample

    audio = resample(np.asarray(samples, dtype=np.float32), rate_hz, WHISPER_RATE_HZ)
    segments, _ = get_transcriber()._model.transcribe(audio, language="en", beam_size=1, word_timestamps=True,
                                                      condition_on_previous_text=False, vad_filter=False)
    return float(sum(w.end - w.start for s in segments for w in (s.words or [])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="", help="comma-separated voice folder names")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to measure.")
        return 0
    names = [v for v in args.voices.split(",") if v] or sorted(
        p.name for p in VOICES_DIR.iterdir() if p.is_dir())

    from voxmith.audio import load_audio, to_mono, trim_silence
    from voxmith.engines.piper_vc import world
    from voxmith.engines.piper_vc.base_voice import get_base_voice
    from voxmith.engines.piper_vc.rate import RATE_RANGE
    from voxmith.engines.piper_vc.intelligibility import transcribe_clip
    from voxmith.engines.piper_vc.parallel import prepare_clip

    sr = world.SAMPLE_RATE_HZ
    voice = get_base_voice()
    measures = ("harvest/dio", "harvest/harvest", "dio/dio", "active", "trimmed", "words")

    def ratios_of(target: np.ndarray, joe: np.ndarray) -> dict:
        t_h = int(world.analyse(target, accurate_f0=True).voiced.sum())
        t_d = int(world.analyse(target).voiced.sum())
        j_h = int(world.analyse(joe, accurate_f0=True).voiced.sum())
        j_d = int(world.analyse(joe).voiced.sum())
        return {"ratios": {"harvest/dio": t_h / j_d, "harvest/harvest": t_h / j_h, "dio/dio": t_d / j_d,
                           "active": active_frames(target, sr) / max(active_frames(joe, sr), 1),
                           "trimmed": target.size / joe.size,
                           "words": word_seconds(target, sr) / max(word_seconds(joe, sr), 1e-3)},
                "joe_harvest_over_dio": j_h / j_d, "target_harvest_over_dio": t_h / t_d}

    known = {}
    for scale in (0.9, 1.2):
        got = [ratios_of(prepare_clip(voice.speak(text, seed=0, length_scale=scale).samples, sr),
                         trim_silence(voice.speak(text, seed=0).samples, sr))["ratios"] for text in KNOWN_SENTENCES]
        known[str(scale)] = {m: float(np.median([g[m] for g in got])) for m in measures}
        print(f"known rate {scale}: " + " ".join(f"{m}={v:.2f}" for m, v in known[str(scale)].items()), flush=True)
    rows = []
    for name in names:
        files = sorted(p for p in (VOICES_DIR / name).iterdir() if p.suffix.lower() in AUDIO_EXT)[:-1]
        clips = []
        for path in files:
            clip = load_audio(path)
            target = prepare_clip(to_mono(clip.samples), clip.sample_rate_hz)
            text = transcribe_clip(target, sr)
            if len(text.split()) < 2:
                continue
            joe = trim_silence(voice.speak(text, seed=0).samples, sr)
            clips.append({"clip": path.name, "n_words": len(text.split()), **ratios_of(target, joe)})
        if not clips:
            continue
        row = {"voice": name, "clips": clips,
               "median": {m: float(np.median([c["ratios"][m] for c in clips])) for m in measures},
               "joe_harvest_over_dio": float(np.median([c["joe_harvest_over_dio"] for c in clips])),
               "target_harvest_over_dio": float(np.median([c["target_harvest_over_dio"] for c in clips]))}
        rows.append(row)
        print(f"{name:15s} " + " ".join(f"{m}={row['median'][m]:.2f}" for m in measures)
              + f"  joe H/D={row['joe_harvest_over_dio']:.2f} target H/D={row['target_harvest_over_dio']:.2f}",
              flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"rate_range": RATE_RANGE, "known": known, "rows": rows,
                                              "partial": True}, indent=2))
    summary = {m: float(np.mean([r["median"][m] for r in rows])) for m in measures}
    print("mean over voices: " + " ".join(f"{m}={v:.2f}" for m, v in summary.items()))
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    Path(args.out).write_text(json.dumps({"rate_range": RATE_RANGE, "known": known, "rows": rows, "mean": summary,
                                          "load_average": load}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
