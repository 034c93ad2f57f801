"""Voice-conversion benchmark (`voxmith convert`, piper-vc) on ordered pairs of the shared voices.

For each target voice of the sample: enroll it on all its clips (cached in the workspace given
with --home, so re-runs skip it). For each other voice of the sample as the source: convert its
last clip (held back: the source speaker's embedding comes from its other clips) into the target,
through `Studio.convert`, and score the result:
- SECS to target: GE2E cosine of the output to the target voice's mean embedding (its clips);
- SECS to source: the same to the source speaker's other clips (lower is better);
- SECS of the unconverted clip to the target (the baseline the conversion must beat);
- WER: Whisper (bundled base model) transcript of the output against Whisper's transcript of the
  unconverted clip (the shared voices have no transcripts), studio normalisation;
- MOS: DistillMOS of the output and of the unconverted clip, when voxmith.quality is installed;
- RTF: conversion wall time (warp search included) / clip duration.
Writes benchmarks/results/convert_quality.json.

    .venv/bin/python benchmarks/convert_quality.py [--voices tom,emma,daniel,angie] [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

VOICES_DIR = Path(__file__).resolve().parents[2] / "shared" / "voices"
RESULTS = Path(__file__).resolve().parent / "results" / "convert_quality.json"
# Two men, two women (tortoise-tts' voices): every ordered pair of them, 12 conversions.
DEFAULT_VOICES = "tom,daniel,emma,angie"
AUDIO_EXT = {".wav", ".mp3", ".flac", ".ogg"}


def clips_of(voice: str) -> list[Path]:
    return sorted(p for p in (VOICES_DIR / voice).iterdir() if p.suffix.lower() in AUDIO_EXT)


def naturalness():
    """DistillMOS scorer (samples, rate) -> MOS, or None when voxmith.quality (the quality work of
    issue 11) or DistillMOS is not installed."""
    try:
        from voxmith.quality import NaturalnessUnavailable, get_naturalness_model
    except ImportError:
        return None
    try:
        return get_naturalness_model().score
    except NaturalnessUnavailable:
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default=DEFAULT_VOICES, help="comma-separated voice folder names")
    ap.add_argument("--home", default=str(Path.home() / ".cache" / "voxmith-convert-bench"),
                    help="workspace (enrollments are cached there)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to benchmark.")
        return 0

    from voxmith.asr import get_transcriber
    from voxmith.audio import load_audio
    from voxmith.speaker import cosine_similarity, get_speaker_encoder, mean_embedding
    from voxmith.studio import Studio
    from voxmith.studio.conversion import ConvertRequest
    from voxmith.text import word_error_rate

    voices = [v for v in args.voices.split(",") if v]
    studio = Studio(args.home, device="cpu")
    encoder, transcriber, mos = get_speaker_encoder("cpu"), get_transcriber(), naturalness()

    def embed(x: np.ndarray) -> np.ndarray:
        return encoder.embed(x, 22050)

    def embed_files(paths) -> np.ndarray:
        return mean_embedding([embed(load_audio(p, sample_rate_hz=22050).samples) for p in paths])

    rows, enroll_s = [], {}

    def write(done_rows: list, partial: bool) -> None:
        report = report_for(done_rows, voices, enroll_s, mos is not None, partial)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        if not partial:
            print(json.dumps(report["summary"], indent=2))

    for target in voices:
        if not studio.voices.exists(target):
            studio.voices.add(target, clips_of(target))
        started = time.perf_counter()
        studio.conditioning(target, studio.engine("piper-vc"))
        enroll_s[target] = round(time.perf_counter() - started, 1)
        target_embedding = embed_files(clips_of(target))
        for source in voices:
            if source == target:
                continue
            clip = clips_of(source)[-1]
            original = load_audio(clip, sample_rate_hz=22050).samples
            source_embedding = embed_files(clips_of(source)[:-1])
            out = Path(args.home) / "out" / f"{source}-as-{target}.wav"
            started = time.perf_counter()
            result = studio.convert(ConvertRequest(clip, voice=target, output=out, overwrite=True))
            seconds = time.perf_counter() - started
            converted = load_audio(result.path).samples
            said = transcriber.transcribe(original, 22050).text
            heard = transcriber.transcribe(converted, 22050).text
            e = embed(converted)
            row = {
                "source": source, "target": target, "clip": clip.name,
                "duration_s": round(original.size / 22050, 2),
                "secs_target": round(cosine_similarity(e, target_embedding), 4),
                "secs_source": round(cosine_similarity(e, source_embedding), 4),
                "secs_unconverted_to_target": round(cosine_similarity(embed(original), target_embedding), 4),
                "wer": round(word_error_rate(said, heard).wer, 4),
                "rtf": round(seconds / (original.size / 22050), 3),
                "warp": result.sidecar["conversion"]["warp"],
                "transcript_source": said, "transcript_converted": heard,
            }
            if mos is not None:
                row["mos"] = round(float(mos(converted, 22050)), 3)
                row["mos_unconverted"] = round(float(mos(original, 22050)), 3)
            rows.append(row)
            write(rows, partial=True)
            print(f"{source:>8} -> {target:<8} SECS tgt {row['secs_target']:.3f} src {row['secs_source']:.3f} "
                  f"(unconverted {row['secs_unconverted_to_target']:.3f}) WER {row['wer']:.1%} RTF {row['rtf']:.2f}",
                  flush=True)

    write(rows, partial=False)
    return 0


def report_for(rows: list, voices: list, enroll_s: dict, with_mos: bool, partial: bool) -> dict:
    def mean(key: str) -> float:
        return round(float(np.mean([r[key] for r in rows])), 4)

    closer = sum(r["secs_target"] > r["secs_source"] for r in rows)
    worst = min(rows, key=lambda r: r["secs_target"] - r["secs_source"])
    summary = {
        "pairs": len(rows),
        "secs_target": mean("secs_target"), "secs_source": mean("secs_source"),
        "secs_unconverted_to_target": mean("secs_unconverted_to_target"),
        "wer": mean("wer"), "rtf": mean("rtf"),
        "closer_to_target_than_source": f"{closer}/{len(rows)}",
        "worst_pair": f"{worst['source']} -> {worst['target']} (SECS target {worst['secs_target']}, "
                      f"source {worst['secs_source']}, WER {worst['wer']})",
        "worst_wer_pair": max(rows, key=lambda r: r["wer"])["source"] + " -> "
                          + max(rows, key=lambda r: r["wer"])["target"],
        "mos": mean("mos") if with_mos else "skipped: voxmith.quality (DistillMOS) not installed",
    }
    if with_mos:
        summary["mos_unconverted"] = mean("mos_unconverted")
    return {
        "benchmark": "convert_quality", "engine": "piper-vc", "voices": voices,
        "complete": not partial,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "load_average_at_end": os.getloadavg()[0],
        "note": "timings measured on a shared 2-core machine under heavy load (see load_average_at_end): "
                "RTF is an upper bound",
        "summary": summary, "enrollment_s": enroll_s, "rows": rows,
    }


if __name__ == "__main__":
    raise SystemExit(main())
