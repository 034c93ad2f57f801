"""piper-vc's enrolled conditionings changed after enrollment, scored on the development sentences.

Each voice's conditioning comes from --cond-dir as clone_quality.py caches it (DIR/VOICE.vVERSION.npz,
enrolled on all clips but the last); nothing is enrolled here. Each variant (a JSON object) changes a
copy of it, then guard_grid.DEV_SENTENCES (used by no code path, test or check) are spoken and
scored: SECS against the held-out last clip, Whisper's word error rate, DistillMOS. Keys:

- `rows`: keep the phone deviations (phone_shift.py) of "vowels" or "sonorants" (vowels, nasals,
  liquids, glides) only; every other phone's row is 0.
- `phone_scale_min`: the guard's phone-deviation share raised to at least this (no check heard).
- `phone_scale_mult`: that share multiplied.
- `mean_share`: the envelope statistics split, the voice-wide mean shift applied at this share (never
  below the share the guard kept), the spread's change at `var_rel` times the kept share (default 1),
  the phone deviations at `phone_rel` times their kept strength (default 1, so unchanged in effect).
- `refit`: the phone deviations fitted again from the enrollment clips (phone_envelope_map's
  pieces: the enrolled base voice saying each 12-s piece's transcript, DTW-aligned), `against`
  "joe" (the clip minus the base voice's envelope, as enrollment fits them), "warped" (minus the base
  voice's envelope at the enrolled warp) or "converted" (minus the enrolled conversion of it, at the
  ridge the guard kept), with `shrink` frames of shrinkage (default phone_shift.SHRINK_FRAMES).
- `settings`: synthesis settings (PiperVCSettings fields).

A variant `{}` is the conditioning as enrolled.

    PYTHONPATH=src .venv/bin/python benchmarks/enrolled_variants.py --cond-dir DIR \\
        --variants '[{}, {"rows": "vowels"}, {"mean_share": 1.0, "var_rel": 0}]'
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clone_quality import VOICES_DIR  # noqa: E402
from phone_envelope_map import parallel_pieces  # noqa: E402
from similarity_levers import cached_voices, print_summary, save_rows, spoken_row  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "enrolled_variants.json"
# Piper's espeak IPA, one token per character (diphthongs are two tokens).
VOWELS = frozenset("aeiouæɐɑɒɔəɚɛɜɝɪʊʌᵻyʏøœɨʉɯɤɵɘɞɶ")
SONORANTS = VOWELS | frozenset("mnŋlɹwjɾɫ")


def refitted(cond: dict, pieces: list, against: str, shrink: float):
    """The phone deviations fitted on `pieces` (parallel_pieces) against the base voice's envelope
    as `against` says (see the module docstring)."""
    from voxmith.engines.piper_vc import conversion, guard, phone_shift, world
    from voxmith.engines.piper_vc.engine import PiperVCSettings

    params = conversion.ConversionParams.from_arrays(cond, prefix="conv.")
    ridge_mix = 0.0
    if params.ridge.any():  # the default ridge_mix times what the guard kept, as synthesis uses it
        ridge_mix = float(PiperVCSettings().ridge_mix) * float(cond.get(guard.KEYS["ridge"], 1.0))
    params.ridge_mix = ridge_mix
    reference = {"joe": lambda base: base.mcep, "warped": lambda base: world.warp_mcep(base.mcep, params.warp),
                 "converted": lambda base: conversion.convert(base, params).mcep}[against]
    return phone_shift.fit([target - reference(base) for base, target, _ in pieces],
                           [labels for _, _, labels in pieces], shrink_frames=shrink)


def varied(cond: dict, variant: dict, pieces: list = ()) -> dict:
    """A copy of `cond` changed as `variant` says (see the module docstring); `pieces`: the voice's
    parallel_pieces, for `refit`."""
    from voxmith.engines.piper_vc import guard, phone_shift

    out = dict(cond)
    if "refit" in variant:
        refit = variant["refit"]
        out.update(refitted(cond, list(pieces), refit.get("against", "joe"),
                            float(refit.get("shrink", phone_shift.SHRINK_FRAMES))).to_conditioning())
    keep = {"vowels": VOWELS, "sonorants": SONORANTS}.get(variant.get("rows", ""))
    if keep is not None:
        tokens = [str(t) for t in np.asarray(out[phone_shift.KEYS["tokens"]]).reshape(-1)]
        deviation = np.array(out[phone_shift.KEYS["deviation"]], np.float64)
        deviation[[k for k, token in enumerate(tokens) if token not in keep]] = 0.0
        out[phone_shift.KEYS["deviation"]] = deviation.astype(np.float32)
    phones_key, statistics_key = guard.KEYS["phones"], guard.KEYS["statistics"]
    if "phone_scale_mult" in variant:
        out[phones_key] = np.asarray(float(out[phones_key]) * variant["phone_scale_mult"])
    if "phone_scale_min" in variant:
        out[phones_key] = np.asarray(max(float(out[phones_key]), variant["phone_scale_min"]))
    if "mean_share" in variant:
        # The render moves the envelope by share x (converted - base); the per-dimension map's change is
        # (mean_t - mean_s) + (x - mean_s)(std_t / std_s - 1). At render share m, a spread change at
        # share v needs std_t' = std_s (1 + (v / m)(std_t / std_s - 1)).
        kept = float(out[statistics_key])
        mean = max(kept, variant["mean_share"])
        spread = kept * variant.get("var_rel", 1.0)
        for group in ("voiced", "unvoiced"):
            src, tgt = np.asarray(out[f"conv.src_{group}.std"]), np.asarray(out[f"conv.tgt_{group}.std"])
            out[f"conv.tgt_{group}.std"] = src * (1 + (spread / mean) * (tgt / src - 1))
        out[phones_key] = np.asarray(float(out[phones_key]) * kept / mean * variant.get("phone_rel", 1.0))
        out[statistics_key] = np.asarray(mean)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="")
    ap.add_argument("--cond-dir", required=True)
    ap.add_argument("--variants", default="[{}]")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to measure.")
        return 0
    from voxmith.asr import get_transcriber
    from voxmith.engines.piper_vc import PiperVCEngine, base_choice
    from voxmith.engines.piper_vc.base_voice import get_base_voice
    from voxmith.quality import get_naturalness_model
    from voxmith.speaker import get_speaker_encoder

    engine = PiperVCEngine(device="cpu")
    encoder, mos_model, transcriber = get_speaker_encoder("cpu"), get_naturalness_model(), get_transcriber()
    variants = json.loads(args.variants)
    names = [v for v in args.voices.split(",") if v] or sorted(p.name for p in VOICES_DIR.iterdir() if p.is_dir())
    rows = []
    for name, clips, held_out, cond in cached_voices(engine, names, args.cond_dir, encoder):
        pieces = []
        if any("refit" in variant for variant in variants):
            pieces = parallel_pieces(clips[:-1], get_base_voice(base_choice.base_name(cond)), transcriber)
        for variant in variants:
            settings = replace(engine.settings_class(), **variant.get("settings", {}))
            voice_cond = varied(cond, variant, pieces)
            rows.append(spoken_row(engine, name, variant, voice_cond, settings, held_out,
                                   (encoder, transcriber, mos_model)))
        save_rows(args.out, engine, rows)
    print_summary(rows, "variant")
    return 0


if __name__ == "__main__":
    sys.exit(main())
