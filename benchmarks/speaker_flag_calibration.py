"""Calibrates the dataset flag "unlike the main speaker" on the real recordings in ../shared/voices.

Each voice's clips are cut into segments the way `dataset prepare` cuts them (same pause finder,
2-12 s) and embedded with the GE2E encoder. For every ordered pair of voices (main, intruder), a
mixed dataset holds all the main voice's segments and intruder segments up to a third of them;
the main speaker's center is estimated from the mix (`main_speaker_center`, as prepare does) and
every segment's similarity to it is recorded: main-voice segments form the same-speaker
distribution, intruder segments the other-speaker one. `applejack` and `rainbow` are two
characters of one actress: their pairs are reported apart and left out of both distributions.

For each threshold the script reports the share of same-speaker segments flagged (false flags) and
of other-speaker segments missed; it picks the threshold with the fewest errors of both kinds
(equal weight), the middle of that range when several tie, and names the worst voice. It also measures the audio bandwidth (99.9 % of the
energy) of every clip as recorded and after a round trip through 8 kHz telephone audio, the
figures behind the narrow-band flag of `voices show`.

    .venv/bin/python benchmarks/speaker_flag_calibration.py   # writes results/speaker_flag_calibration.json
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

from voxmith.audio import load_audio
from voxmith.audio.analysis import audio_bandwidth_hz
from voxmith.audio.dsp import resample
from voxmith.datasets.prepare import OTHER_SPEAKER_COSINE
from voxmith.datasets.slicing import plan_segments
from voxmith.speaker import get_speaker_encoder
from voxmith.speaker.main_speaker import main_speaker_center

SHARED_VOICES = Path(__file__).resolve().parents[2] / "shared" / "voices"
RESULTS = Path(__file__).resolve().parent / "results" / "speaker_flag_calibration.json"
SAME_ACTRESS = {"applejack", "rainbow"}
SEGMENT_MIN_S, SEGMENT_MAX_S = 2.0, 5.0
INTRUDER_SHARE = 1 / 3  # intruder segments at most this fraction of the main voice's


def voice_segments(folder: Path, encoder):
    """GE2E embeddings of a voice's segments, cut as `dataset prepare` cuts them."""
    embeddings, bandwidths = [], []
    for clip in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".mp3", ".flac")):
        audio = load_audio(clip)
        telephone = resample(resample(audio.samples, audio.sample_rate_hz, 8000), 8000, audio.sample_rate_hz)
        bandwidths.append({"clip": f"{folder.name}/{clip.name}", "rate_hz": audio.sample_rate_hz,
                           "bandwidth_hz": round(audio_bandwidth_hz(audio.samples, audio.sample_rate_hz)),
                           "via_8khz_bandwidth_hz": round(audio_bandwidth_hz(telephone, audio.sample_rate_hz))})
        # Short segments (2-5 s) give more of them from these short clips, and noisier embeddings
        # than prepare's 2-12 s: a conservative calibration.
        for span in plan_segments(resample(audio.samples, audio.sample_rate_hz, 16000), SEGMENT_MIN_S, SEGMENT_MAX_S):
            if span.flags:
                continue
            piece = audio.samples[int(span.start_s * audio.sample_rate_hz):int(span.end_s * audio.sample_rate_hz)]
            embeddings.append(encoder.embed(piece, audio.sample_rate_hz))
    return np.stack(embeddings), bandwidths


def main() -> int:
    if not SHARED_VOICES.is_dir():
        print(f"no recordings at {SHARED_VOICES}", file=sys.stderr)
        return 1
    encoder = get_speaker_encoder("cpu")
    voices, bandwidths = {}, []
    for folder in sorted(p for p in SHARED_VOICES.iterdir() if p.is_dir()):
        voices[folder.name], clip_bandwidths = voice_segments(folder, encoder)
        bandwidths += clip_bandwidths
        print(f"{folder.name}: {len(voices[folder.name])} segments", file=sys.stderr)

    same, other, same_actress = [], [], []
    per_voice = {name: {"same": [], "other": []} for name in voices}
    for main_name, intruder_name in itertools.permutations(voices, 2):
        main, intruder = voices[main_name], voices[intruder_name]
        intruder = intruder[:max(1, int(len(main) * INTRUDER_SHARE))]
        center = main_speaker_center(list(main) + list(intruder)).astype(np.float64)
        main_sims, intruder_sims = main @ center, intruder @ center
        if {main_name, intruder_name} == SAME_ACTRESS:
            same_actress += intruder_sims.tolist()
            continue
        same += main_sims.tolist()
        other += intruder_sims.tolist()
        per_voice[main_name]["same"] += main_sims.tolist()
        per_voice[intruder_name]["other"] += intruder_sims.tolist()
    same, other = np.array(same), np.array(other)

    thresholds = np.round(np.arange(0.50, 0.95, 0.01), 2)
    table = [{"threshold": float(t), "false_flags": round(float(np.mean(same < t)), 4),
              "missed": round(float(np.mean(other >= t)), 4)} for t in thresholds]
    fewest = min(row["false_flags"] + row["missed"] for row in table)
    tied = [row for row in table if row["false_flags"] + row["missed"] == fewest]
    best = tied[len(tied) // 2]  # the middle of the best range: the widest margin both ways
    t = best["threshold"]
    voice_rows = {}
    for name, d in per_voice.items():
        lowest_same, highest_other = min(d["same"], default=1.0), max(d["other"], default=-1.0)
        voice_rows[name] = {"false_flags": round(float(np.mean(np.array(d["same"]) < t)), 4) if d["same"] else None,
                            "missed_as_intruder": round(float(np.mean(np.array(d["other"]) >= t)), 4)
                            if d["other"] else None,
                            "lowest_same_speaker": round(lowest_same, 4), "highest_as_intruder": round(highest_other, 4),
                            "margin": round(min(lowest_same - t, t - highest_other), 4)}
    worst = min(voice_rows, key=lambda n: voice_rows[n]["margin"])  # the closest call at the threshold

    def quantiles(values):
        return {q: round(float(np.quantile(values, float(q))), 4) for q in ("0.01", "0.05", "0.5", "0.95", "0.99")}

    result = {
        "what": "GE2E cosine of dataset segments to the main speaker's center, same vs other speaker",
        "voices": {name: len(v) for name, v in voices.items()},
        "same_speaker": {"n": int(same.size), "quantiles": quantiles(same)},
        "other_speaker": {"n": int(other.size), "quantiles": quantiles(other)},
        "same_actress_applejack_rainbow": {"n": len(same_actress), "quantiles": quantiles(same_actress)},
        "chosen_threshold": best,
        "threshold_in_code": OTHER_SPEAKER_COSINE,
        "per_voice_at_threshold": voice_rows,
        "worst_voice": worst,
        "table": table,
        "bandwidth_99_9_percent_energy": {
            "clips": bandwidths,
            "lowest_as_recorded_hz": min(b["bandwidth_hz"] for b in bandwidths),
            "highest_via_8khz_hz": max(b["via_8khz_bandwidth_hz"] for b in bandwidths),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("same_speaker", "other_speaker", "same_actress_applejack_rainbow",
                                             "chosen_threshold", "worst_voice")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
