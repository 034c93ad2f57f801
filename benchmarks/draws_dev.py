"""What piper-vc's `draws` buy, on the development sentences: every take scored, then the policies.

Each voice's cached enrollment (clone_quality.py --cond-dir DIR) says guard_grid.DEV_SENTENCES
(used by no code path, test or check), sentence k at seeds k + DRAW_SEED_STRIDE * j for j < --seeds,
one draw each. Every take is scored: GE2E similarity to the held-out last clip (what a listener's
SECS is), to the enrolled embedding (what the engine can rank on), Whisper's errors, DistillMOS.
The summary compares one draw (the mean over the seeds), the nearer of the first two draws, the
nearest of three, and the studio's ranking score (similarity − WER) over two. Rows go to --out as
they are made; `--analyse FILE` prints the table again from them.

    PYTHONPATH=src .venv/bin/python benchmarks/draws_dev.py --cond-dir DIR [--seeds 3] [--voices a,b]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clone_quality import VOICES_DIR, word_errors  # noqa: E402
from guard_grid import DEV_SENTENCES  # noqa: E402
from similarity_levers import cached_voices  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "draws_dev.json"


def scored_takes(cond_dir: str, names: list, seeds: int, out: str) -> list:
    from voxmith.asr import get_transcriber
    from voxmith.engines.piper_vc import PiperVCEngine
    from voxmith.engines.piper_vc.engine import DRAW_SEED_STRIDE
    from voxmith.quality import get_naturalness_model
    from voxmith.speaker import cosine_similarity, get_speaker_encoder
    from voxmith.text import normalize_text

    engine = PiperVCEngine(device="cpu")
    one = engine.settings_class.from_dict({"draws": 1})
    encoder, mos_model, transcriber = get_speaker_encoder("cpu"), get_naturalness_model(), get_transcriber()
    rows = []
    for name, _, held_out, cond in cached_voices(engine, names, cond_dir, encoder):
        for k, sentence in enumerate(DEV_SENTENCES):
            for j in range(seeds):
                take = engine.synthesize(normalize_text(sentence), cond, one, seed=k + DRAW_SEED_STRIDE * j)[0]
                embedding = encoder.embed(take.samples, take.sample_rate_hz)
                wrong, words = word_errors(sentence, transcriber.transcribe(take.samples, take.sample_rate_hz,
                                                                            language="en").text)
                rows.append({"voice": name, "sentence": k, "draw": j,
                             "secs": float(cosine_similarity(embedding, held_out)),
                             "enrolled_similarity": float(cosine_similarity(embedding, cond["target_embedding"])),
                             "errors": wrong, "words": words,
                             "mos": float(mos_model.score(take.samples, take.sample_rate_hz))})
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps({"engine_version": engine.version, "sentences": DEV_SENTENCES,
                                         "rows": rows}, indent=1))
        print(f"{name}: {seeds} draws of {len(DEV_SENTENCES)} sentences scored", flush=True)
    return rows


def print_policies(rows: list) -> None:
    takes = collections.defaultdict(list)
    for row in rows:
        takes[(row["voice"], row["sentence"])].append(row)
    voices = sorted({row["voice"] for row in rows})

    def report(label: str, pick) -> None:
        per_voice = {}
        for voice in voices:
            chosen = [pick(sorted(takes[(voice, k)], key=lambda r: r["draw"]))
                      for k in sorted({key[1] for key in takes if key[0] == voice})]
            per_voice[voice] = (np.mean([c["secs"] for c in chosen]),
                                sum(c["errors"] for c in chosen) / max(1, sum(c["words"] for c in chosen)),
                                np.mean([c["mos"] for c in chosen]))
        table = np.asarray(list(per_voice.values()))
        lowest = min(per_voice, key=lambda v: per_voice[v][0])
        print(f"{label:44s} SECS {table[:, 0].mean():.4f} (lowest {lowest} {per_voice[lowest][0]:.3f}) "
              f"WER {100 * table[:, 1].mean():.1f} % (worst {100 * table[:, 1].max():.1f} %) MOS {table[:, 2].mean():.2f}")

    def mean_take(group: list) -> dict:
        return {"secs": np.mean([r["secs"] for r in group]), "errors": np.mean([r["errors"] for r in group]),
                "words": group[0]["words"], "mos": np.mean([r["mos"] for r in group])}

    report("one draw (mean over the seeds)", mean_take)
    for n in (2, 3):
        report(f"nearest the enrolled voice of {n} draws", lambda g, n=n: max(g[:n], key=lambda r: r["enrolled_similarity"]))
    report("studio score (similarity - WER) of 2 draws",
           lambda g: max(g[:2], key=lambda r: r["enrolled_similarity"] - r["errors"] / max(1, r["words"])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cond-dir")
    ap.add_argument("--voices", default="")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--analyse", metavar="FILE", help="print the policies of rows written before")
    args = ap.parse_args()
    if args.analyse:
        print_policies(json.loads(Path(args.analyse).read_text())["rows"])
        return 0
    if not VOICES_DIR.is_dir() or not args.cond_dir:
        print(f"needs {VOICES_DIR} and --cond-dir; nothing to measure.")
        return 0
    names = [v for v in args.voices.split(",") if v] or sorted(p.name for p in VOICES_DIR.iterdir() if p.is_dir())
    print_policies(scored_takes(args.cond_dir, names, max(1, args.seeds), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
