"""A lever on piper-vc's similarity, prototyped outside the engine: a phone-dependent envelope shift.

At enrollment (here: after it, from the same clips) the enrolled base voice says each clip's
transcript (pieces of at most 12 s, transcribed by Whisper); its frames are DTW-aligned to the clip
(parallel.dtw_path) and labelled with Piper's phone timings. Per phone, the mean of (clip mel-cepstrum
minus base voice mel-cepstrum) over its frames, shrunk toward the all-phone mean with the weight of
LAM frames, is that phone's envelope shift. At synthesis each frame of the base voice's take gets its
phone's shift, smoothed in time, in place of the converted envelope (orders 1 .. ORDER-1; `blend`
mixes it with the converted one; `add` instead adds that share of each phone's deviation from the
voice-wide shift to the converted envelope, keeping the whole conversion, and `loud` that share of
each phone's loudness (c0) deviation as a gain after rendering; `scale` replaces the guard's
statistics share in the rendering). Where the statistics map moves every frame by one voice-wide
mean and variance, this moves each sound toward how the target says that sound. The `add` mode is
what engine 13 adopted (phone_shift.py); `"engine": true` instead puts the engine's own deviations
(its labelling and fit) into the enrolled conditioning, at the enrolled strengths without the
guard's check, and `"settings": {"phone_mix": X}` sets their strength.

The engine's convert, render and _base_take are wrapped in this process only (nothing in src/
changes). Each voice is enrolled once at today's defaults (all clips but the last; cached in
--cond-dir as similarity_levers.py caches them); guard_grid.DEV_SENTENCES are spoken and scored (SECS
against the held-out clip, Whisper WER, DistillMOS). A variant `{}` is the engine as it is.

    PYTHONPATH=src .venv/bin/python benchmarks/phone_envelope_map.py --cond-dir DIR \
        --variants '[{}, {"lam": 10, "order": 35, "smooth": 40, "scale": 1, "settings": {"postnet_mix": 0}}]'
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clone_quality import AUDIO_EXT, VOICES_DIR  # noqa: E402
from similarity_levers import enrolled, print_summary, save_rows, spoken_row  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "phone_envelope_map.json"
DEFAULT_VARIANTS = '[{}, {"lam": 10, "order": 35, "smooth": 40, "scale": 1, "settings": {"postnet_mix": 0}}]'
PIECE_SECONDS = 12  # the DTW's cost matrix grows with the square of a piece's length
SILENCE = "_"  # the label of frames outside every phone (phone_shift.PAUSE)


def phone_shifts(differences: np.ndarray, labels: np.ndarray, lam: float) -> tuple[dict, np.ndarray]:
    """Per phone, the mean envelope difference shrunk toward the mean over all speech frames with the
    weight of `lam` frames; and that mean (for phones the enrollment never heard)."""
    speech = labels != SILENCE
    overall = differences[speech].mean(axis=0)
    shifts = {phone: (differences[labels == phone].sum(axis=0) + lam * overall) / ((labels == phone).sum() + lam)
              for phone in set(labels[speech])}
    shifts[SILENCE] = differences[~speech].mean(axis=0) if (~speech).any() else overall
    return shifts, overall


class PhoneMapLever:
    """Wraps the engine's convert, render and _base_take in this process: while `active` is set
    (shifts, overall, order, blend, smooth, optional scale), the converted envelope's orders
    1 .. order-1 move toward the base take's envelope plus its phones' shifts."""

    def __init__(self, engine_module, conversion, render):
        self.active: dict = {}
        self._alignment = None
        self._loudness = None  # the last take's per-frame phone loudness deviation (c0)
        self._render_module = render
        convert, render_fn, base_take = conversion.convert, render.render, engine_module._base_take

        def take(voice, text, *args, **kwargs):
            result = base_take(voice, text, *args, **kwargs)
            self._alignment = result[0].alignment  # synthesis here is sequential: the take converted next
            return result

        def converted(feats, params, **kwargs):
            out = convert(feats, params, **kwargs)
            return out if not self.active else self._shifted(feats, out)

        def rendered(samples, source, conv, spectral_scale=1.0, smoothing_ms=0.0, psola_floor=0.3):
            if self.active and "scale" in self.active:
                spectral_scale = self.active["scale"]
            out = render_fn(samples, source, conv, spectral_scale=spectral_scale, smoothing_ms=smoothing_ms,
                            psola_floor=psola_floor)
            if self.active.get("loud") and self._loudness is not None:
                gain = np.zeros((self._loudness.size, conv.mcep.shape[1]))
                gain[:, 0] = self.active["loud"] * self._loudness
                out = self._render_module.envelope_filter(out, gain)
            return out

        engine_module._base_take, conversion.convert, render.render = take, converted, rendered

    def _shifted(self, feats, out):
        from voxmith.engines.piper_vc import phone_shift, world

        a = self.active
        labels = phone_shift.frame_phones(self._alignment, feats.mcep.shape[0], world.SAMPLE_RATE_HZ,
                                          world.FRAME_PERIOD_MS)
        shift = np.stack([a["shifts"].get(label, a["overall"]) for label in labels])
        shift = self._render_module.smooth_in_time(shift, a["smooth"])
        order = a["order"]
        self._loudness = shift[:, 0] - a["overall"][0]
        mcep = out.mcep.copy()
        if a.get("add") or a.get("loud"):  # only each phone's deviation from the voice-wide shift, on top of the conversion
            mcep[:, 1:order] += a["add"] * (shift[:, 1:order] - a["overall"][1:order])
            return world.WorldFeatures(out.f0, mcep, out.ap)
        mcep[:, 1:order] = (1 - a["blend"]) * mcep[:, 1:order] + a["blend"] * (feats.mcep[:, 1:order] + shift[:, 1:order])
        return world.WorldFeatures(out.f0, mcep, out.ap)


def parallel_pieces(clips, voice, transcriber) -> list:
    """(the base voice's features, the clip's mel-cepstra on the DTW path, each base frame's phone as
    the engine labels it: phone_shift.frame_phones) for each piece of at most PIECE_SECONDS of
    `clips`, the base voice `voice` saying Whisper's transcript of the piece."""
    from voxmith.audio import to_mono
    from voxmith.engines.piper_vc import phone_shift, world
    from voxmith.engines.piper_vc.parallel import dtw_path, prepare_clip

    rate = world.SAMPLE_RATE_HZ
    pieces = []
    for clip in clips:
        prepared = prepare_clip(to_mono(clip.samples), clip.sample_rate_hz)
        for start in range(0, prepared.size, PIECE_SECONDS * rate):
            piece = prepared[start:start + PIECE_SECONDS * rate]
            if piece.size < 2 * rate:
                continue
            text = transcriber.transcribe(piece, rate, language="en").text
            if len(text.split()) < 2:
                continue
            said = voice.speak(text, seed=0)
            base, target = world.analyse(said.samples), world.analyse(piece, accurate_f0=True)
            path = dtw_path(base.mcep[:, 1:], target.mcep[:, 1:])
            pieces.append((base, target.mcep[path],
                           phone_shift.frame_phones(said.alignment, base.mcep.shape[0], rate, world.FRAME_PERIOD_MS)))
    return pieces


def enrollment_differences(clips, voice, transcriber) -> tuple[np.ndarray, np.ndarray]:
    """(frames, 35) clip minus base-voice mel-cepstra along the DTW path, and each frame's phone
    (parallel_pieces)."""
    pieces = parallel_pieces(clips, voice, transcriber)
    return (np.concatenate([target - base.mcep for base, target, _ in pieces]),
            np.concatenate([labels for _, _, labels in pieces]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="")
    ap.add_argument("--cond-dir", required=True)
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to measure.")
        return 0
    from voxmith.asr import get_transcriber
    from voxmith.audio import load_audio, to_mono
    from voxmith.engines.piper_vc import PiperVCEngine, base_choice, conversion, phone_shift, render
    from voxmith.engines.piper_vc import engine as engine_module
    from voxmith.engines.piper_vc.base_voice import get_base_voice
    from voxmith.quality import get_naturalness_model
    from voxmith.speaker import get_speaker_encoder

    lever = PhoneMapLever(engine_module, conversion, render)
    engine = PiperVCEngine(device="cpu")
    defaults = engine.settings_class()
    encoder, mos_model, transcriber = get_speaker_encoder("cpu"), get_naturalness_model(), get_transcriber()
    variants = json.loads(args.variants)
    names = [v for v in args.voices.split(",") if v] or sorted(p.name for p in VOICES_DIR.iterdir() if p.is_dir())
    rows = []
    for name in names:
        started = time.perf_counter()
        clips = [load_audio(p) for p in sorted((VOICES_DIR / name).iterdir()) if p.suffix.lower() in AUDIO_EXT]
        held_out = encoder.embed(to_mono(clips[-1].samples), clips[-1].sample_rate_hz)
        cond = enrolled(engine, name, clips[:-1], args.cond_dir)
        voice = get_base_voice(base_choice.base_name(cond))
        differences, labels = enrollment_differences(clips[:-1], voice, transcriber)
        deviations = phone_shift.fit([differences], [labels])
        print(f"{name}: {voice.name}, {int((labels != SILENCE).sum())} speech frames, "
              f"{time.perf_counter() - started:.0f}s", flush=True)
        for variant in variants:
            lever.active = {}
            if variant.get("lam") is not None:
                shifts, overall = phone_shifts(differences, labels, variant["lam"])
                lever.active = {"shifts": shifts, "overall": overall, "order": variant.get("order", 35),
                                "blend": variant.get("blend", 1.0), "smooth": variant.get("smooth", 30),
                                "add": variant.get("add", 0.0), "loud": variant.get("loud", 0.0)}
                if "scale" in variant:
                    lever.active["scale"] = variant["scale"]
            settings = replace(defaults, **variant.get("settings", {}))
            # "engine": the engine's own deviations (phone_shift.py) at the enrolled strengths, no guard
            voice_cond = {**cond, **deviations.to_conditioning()} if variant.get("engine") else cond
            rows.append(spoken_row(engine, name, variant, voice_cond, settings, held_out,
                                   (encoder, transcriber, mos_model)))
        save_rows(args.out, engine, rows)
    lever.active = {}
    print_summary(rows, "variant")
    return 0


if __name__ == "__main__":
    sys.exit(main())
