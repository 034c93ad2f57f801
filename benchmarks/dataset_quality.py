"""Dataset preparation quality on a long recording with known text.

Builds one recording from (a) Piper's joe voice reading ~300 words of known text, sentence by
sentence, with pauses of 0.25-1.2 s between sentences, and (b) the real clips in ../shared/voices
joined with short gaps (when present). Runs `prepare_dataset` on it and reports:
- WER of the transcripts of part (a) against the known text,
- the segment-length distribution,
- the fraction of cuts that fall inside a word (30 ms around the cut within 20 dB of speech level),
- throughput: seconds of audio processed per wall-clock second.

    .venv/bin/python benchmarks/dataset_quality.py        # writes benchmarks/results/dataset_quality.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from voxmith.audio import load_audio
from voxmith.audio.dsp import frame_rms_db
from voxmith.text import word_error_rate

SHARED_VOICES = Path(__file__).resolve().parents[2] / "shared" / "voices"
RESULTS = Path(__file__).resolve().parent / "results" / "dataset_quality.json"
RATE = 22050

KNOWN_TEXT = [
    "The old lighthouse stood at the edge of the cliff for more than a century.",
    "Every evening the keeper climbed the narrow stairs to light the great lamp.",
    "Ships far out at sea used its beam to find their way past the rocks.",
    "In winter the wind howled around the tower and rattled the heavy windows.",
    "The keeper kept a careful log of the weather and of every passing vessel.",
    "One night a thick fog rolled in from the ocean and covered the whole coast.",
    "He could hear a horn somewhere in the grey darkness, calling again and again.",
    "Without hesitation he rang the bell and turned the lamp to its brightest setting.",
    "After an hour the horn grew louder and a small fishing boat appeared below.",
    "The crew waved their arms and shouted their thanks as they reached the harbor.",
    "News of the rescue spread quickly through the village the following morning.",
    "Children came to the lighthouse to hear the story told in the keeper's own words.",
    "He showed them the brass instruments and the thick books full of records.",
    "Many years later the lamp was replaced by an automatic light and a radio beacon.",
    "The keeper moved to a small cottage near the harbor where he could watch the boats.",
    "Visitors still climb the tower today to enjoy the view across the bay.",
    "On clear days you can see the islands far to the south and the mountains to the north.",
    "A small museum on the ground floor tells the history of the coast and its people.",
    "The most popular exhibit is the keeper's log, open at the page about the fog.",
    "Scientists now use the old station to measure the wind, the waves and the temperature.",
    "Their instruments send data every few minutes to a laboratory in the city.",
    "The records help sailors plan their journeys and warn them about coming storms.",
    "In this way the lighthouse continues to protect the ships, just as it always did.",
    "Some people say that on foggy nights you can still hear the bell ringing softly.",
    "Whether or not that is true, the story of the keeper is remembered by everyone.",
]


def build_recording(out: Path, use_shared: bool) -> dict:
    from voxmith.engines.piper_vc.base_voice import get_base_voice

    rng = np.random.default_rng(0)
    voice = get_base_voice()
    parts, known_until_s = [np.zeros(int(0.5 * RATE), np.float32)], 0.0
    for i, sentence in enumerate(KNOWN_TEXT):
        parts.append(voice.speak(sentence, seed=i).samples * 0.5)
        parts.append(np.zeros(int(rng.uniform(0.25, 1.2) * RATE), np.float32))
    known_until_s = sum(p.shape[0] for p in parts) / RATE
    shared_files = []
    if use_shared and SHARED_VOICES.is_dir():
        for path in sorted(SHARED_VOICES.glob("*/*")):
            if path.suffix in (".wav", ".mp3"):
                parts.append(load_audio(path, sample_rate_hz=RATE).samples)
                parts.append(np.zeros(int(0.6 * RATE), np.float32))
                shared_files.append(path.name)
    samples = np.concatenate(parts)
    sf.write(out, samples, RATE, subtype="PCM_16")
    return {"known_until_s": known_until_s, "total_s": samples.shape[0] / RATE, "shared_clips": len(shared_files)}


def cuts_inside_words(record: dict, recording: Path) -> tuple[int, int]:
    # 16 kHz makes a 10 ms frame exactly 160 samples, so frame index = time * 100 without drift.
    audio = load_audio(recording, sample_rate_hz=16000)
    levels = frame_rms_db(audio.samples, 16000, 10)
    speech_level = float(np.percentile(levels, 90))
    segments = record["segments"]
    cuts = [s["end_s"] for s in segments[:-1]] + [s["start_s"] for s in segments[1:]]
    inside = sum(levels[max(0, int(c * 100) - 1): int(c * 100) + 2].max() >= speech_level - 20 for c in cuts)
    return int(inside), len(cuts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-shared", action="store_true", help="Only the Piper part (no ../shared/voices).")
    args = parser.parse_args()
    from voxmith.studio import Studio

    with tempfile.TemporaryDirectory() as tmp:
        recording = Path(tmp) / "long.wav"
        built = build_recording(recording, not args.no_shared)
        studio = Studio(Path(tmp) / "ws", device="cpu")
        started = time.perf_counter()
        summary = studio.prepare_dataset("bench", [recording])
        elapsed = time.perf_counter() - started
        record = studio.datasets.get("bench").load()
        inside, n_cuts = cuts_inside_words(record, recording)
    known = [s for s in record["segments"] if s["end_s"] <= built["known_until_s"] + 0.5]
    hypothesis = " ".join(s["transcript"] or "" for s in known)
    errors = word_error_rate(" ".join(KNOWN_TEXT), hypothesis)
    durations = np.array([s["duration_s"] for s in record["segments"]])
    result = {
        "recording_s": round(built["total_s"], 1),
        "known_text_part_s": round(built["known_until_s"], 1),
        "shared_clips": built["shared_clips"],
        "segments": len(durations),
        "wer_known_text": round(errors.wer, 4),
        "wer_detail": {"substitutions": errors.substitutions, "deletions": errors.deletions,
                       "insertions": errors.insertions, "reference_words": errors.reference_words},
        "segment_seconds": {"min": round(float(durations.min()), 2), "p10": round(float(np.percentile(durations, 10)), 2),
                            "median": round(float(np.median(durations)), 2),
                            "p90": round(float(np.percentile(durations, 90)), 2), "max": round(float(durations.max()), 2)},
        "histogram": summary["histogram"],
        "outside_2_12s": int(np.sum((durations < 2.0) | (durations > 12.3))),
        "cuts_inside_words": inside, "cuts": n_cuts,
        "cut_inside_word_fraction": round(inside / max(n_cuts, 1), 4),
        "wall_s": round(elapsed, 1),
        "throughput_audio_s_per_wall_s": round(built["total_s"] / elapsed, 2),
        "flagged": len(summary["flagged"]),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
