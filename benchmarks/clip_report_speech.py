"""How much speech `voices show` reports per clip: WebRTC's VAD (`analyse_audio`, the report before)
against Silero VAD (`voice_report.speech_stats`, the report now).

On every clip of the real recordings in ../shared/voices (per clip and per voice, worst voice
named) and on synthetic non-speech: white noise, steady tones, a sequence of notes, silence. Also
the time `speech_stats` adds on a 30 s clip.

    PYTHONPATH=src .venv/bin/python benchmarks/clip_report_speech.py   # writes results/clip_report_speech.json
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from voxmith.audio import Audio, load_audio
from voxmith.audio.analysis import analyse_audio
from voxmith.studio.voice_report import speech_stats

SHARED_VOICES = Path(__file__).resolve().parents[2] / "shared" / "voices"
RESULTS = Path(__file__).resolve().parent / "results" / "clip_report_speech.json"
RATE_HZ = 22050


def before_after(audio: Audio) -> tuple[float, float]:
    stats = analyse_audio(audio)
    return stats.speech_s, speech_stats(stats, audio).speech_s


def non_speech() -> dict:
    rng = np.random.default_rng(0)
    t = np.arange(5 * RATE_HZ) / RATE_HZ
    second = np.arange(RATE_HZ) / RATE_HZ
    return {
        "white noise, N(0,1) x 0.1, 5 s": rng.standard_normal(t.shape[0]) * 0.1,
        "tones 220+330+440 Hz, 5 s": 0.3 * (np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 330 * t)
                                             + 0.3 * np.sin(2 * np.pi * 440 * t)) / 1.8,
        "five 1 s notes": np.concatenate([0.3 * np.sin(2 * np.pi * f * second) for f in (262, 330, 392, 523, 440)]),
        "silence, 5 s": np.zeros(t.shape[0]),
    }


def main() -> None:
    clips, voices = {}, {}
    for voice in sorted(p for p in SHARED_VOICES.iterdir() if p.is_dir()):
        before = after = 0.0
        for clip in sorted(p for p in voice.iterdir() if p.suffix.lower() in (".wav", ".mp3", ".flac")):
            audio = load_audio(clip, mono=False)
            b, a = before_after(audio)
            clips[f"{voice.name}/{clip.name}"] = {"duration_s": round(audio.duration_s, 2), "webrtc_s": round(b, 2),
                                                  "silero_s": round(a, 2), "change_pct": round(100 * (a / b - 1), 1)}
            before, after = before + b, after + a
        voices[voice.name] = {"webrtc_s": round(before, 2), "silero_s": round(after, 2),
                              "change_pct": round(100 * (after / before - 1), 1)}
    synthetic = {}
    for name, samples in non_speech().items():
        b, a = before_after(Audio(samples.astype(np.float32), RATE_HZ))
        synthetic[name] = {"duration_s": 5.0, "webrtc_s": round(b, 2), "silero_s": round(a, 2)}

    lj = load_audio(SHARED_VOICES / "lj" / "1.wav")
    long_clip = Audio(np.tile(lj.samples, 4)[: 30 * lj.sample_rate_hz], lj.sample_rate_hz)
    stats = analyse_audio(long_clip)
    speech_stats(stats, long_clip)  # loads the model
    times = []
    for _ in range(3):
        started = time.perf_counter()
        speech_stats(stats, long_clip)
        times.append(time.perf_counter() - started)

    worst = min(voices, key=lambda v: voices[v]["change_pct"])
    worst_clip = min(clips, key=lambda c: clips[c]["change_pct"])
    result = {"voices": voices, "worst_voice": worst, "worst_clip": worst_clip, "clips": clips,
              "synthetic": synthetic, "speech_stats_30s_clip_s": round(float(np.median(times)), 3),
              "load_average": os.getloadavg()[0]}
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    for name, row in voices.items():
        print(f"{name:16s} WebRTC {row['webrtc_s']:6.2f} s  Silero {row['silero_s']:6.2f} s  {row['change_pct']:+.1f} %")
    print(f"worst voice {worst}, worst clip {worst_clip} ({clips[worst_clip]['change_pct']:+.1f} %)")
    for name, row in synthetic.items():
        print(f"{name:32s} WebRTC {row['webrtc_s']:.2f} s  Silero {row['silero_s']:.2f} s")
    print(f"speech_stats on a 30 s clip: {result['speech_stats_30s_clip_s']} s (load {result['load_average']:.2f})")


if __name__ == "__main__":
    main()
