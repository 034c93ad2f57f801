"""Levers on piper-vc's speaker similarity, measured on every shared voice with its enrolled conditioning.

Each voice is enrolled once at today's defaults (all clips but the last; cached in --cond-dir as
DIR/VOICE.auto.vVERSION.npz, the layout base_scales.py writes), then guard_grid.DEV_SENTENCES (used
by no code path, test or check) are spoken and scored: SECS against the held-out last clip, Whisper's
word errors, DistillMOS. One lever per run:

- `--settings 'JSON;JSON'`: synthesis settings (e.g. '{};{"f0_scale":0.92};{"noise_scale":0.9}').
- `--takes N`: N takes per sentence (seeds k + 1000 j), the one nearest the voice's enrolled embedding
  kept (what `--candidates N` ranking on similarity alone could buy), against the first take.
- `--eq ltas`: a static equaliser matching the long-term average spectrum (40 mel bands up to 8 kHz,
  as the GE2E encoder hears it) of the converted check sentences to the voice's clips, bounded by
  --eq-cap-db, applied after synthesis.
- `--eq ge2e`: the same equaliser shape (ten smooth bands) fitted by gradient ascent on the GE2E
  cosine of the converted check sentences to the enrolled embedding (a speaker-consistency
  objective through the encoder's own network).

    PYTHONPATH=src .venv/bin/python benchmarks/similarity_levers.py --takes 3 --cond-dir /tmp/cond \\
        --out benchmarks/results/similarity_levers_run.json
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
from clone_quality import AUDIO_EXT, VOICES_DIR, word_errors  # noqa: E402
from guard_grid import DEV_SENTENCES  # noqa: E402

EQ_BANDS = 10  # smooth bands of the fitted equaliser
EQ_STEPS = 80
MEL_BANDS = 40
ENCODER_RATE_HZ = 16000


def _mel_power(samples: np.ndarray, rate: int) -> np.ndarray:
    """(MEL_BANDS, frames) mel power as the GE2E encoder computes it (25 ms windows, 10 ms hop)."""
    import librosa

    from voxmith.audio import resample
    y = resample(np.asarray(samples, np.float32), rate, ENCODER_RATE_HZ)
    return librosa.feature.melspectrogram(y=y, sr=ENCODER_RATE_HZ, n_fft=400, hop_length=160, n_mels=MEL_BANDS)


def ltas_db(clips) -> np.ndarray:
    """Long-term average mel spectrum of (samples, rate) clips in dB, mean removed; frames more
    than 30 dB below the loudest are left out (pauses)."""
    frames = []
    for samples, rate in clips:
        mel = _mel_power(samples, rate)
        energy = mel.sum(axis=0)
        frames.append(mel[:, energy > energy.max() * 1e-3])
    level = 10 * np.log10(np.concatenate(frames, axis=1).mean(axis=1) + 1e-12)
    return level - level.mean()


def eq_ltas(converted, target, cap_db: float) -> np.ndarray:
    """Log power gain per mel band moving the converted clips' LTAS to the target's (smoothed
    over three bands, bounded by cap_db)."""
    difference = ltas_db(target) - ltas_db(converted)
    difference = np.convolve(np.pad(difference, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    return np.clip(difference, -cap_db, cap_db) * np.log(10) / 10


def eq_ge2e(converted, embedding: np.ndarray, cap_db: float, encoder) -> np.ndarray:
    """Log power gain per mel band maximising the GE2E cosine of the converted clips to `embedding`."""
    import torch
    from resemblyzer import audio as resemblyzer_audio

    from voxmith.audio import resample
    model = encoder._encoder  # resemblyzer's VoiceEncoder (a torch module)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    parts = []
    for samples, rate in converted:
        wav = resemblyzer_audio.preprocess_wav(resample(np.asarray(samples, np.float32), rate, ENCODER_RATE_HZ),
                                               source_sr=ENCODER_RATE_HZ)
        wav_slices, mel_slices = model.compute_partial_slices(len(wav), 1.3, 0.75)
        if wav_slices[-1].stop >= len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
        mel = resemblyzer_audio.wav_to_mel_spectrogram(wav)
        parts.append(torch.tensor(np.stack([mel[s] for s in mel_slices])))
    average = torch.cat([p.reshape(-1, MEL_BANDS) for p in parts]).mean(0)
    position = np.arange(MEL_BANDS)
    basis = np.stack([np.exp(-0.5 * ((position - c) / (MEL_BANDS / EQ_BANDS * 0.6)) ** 2)
                      for c in np.linspace(0, MEL_BANDS - 1, EQ_BANDS)], axis=1)
    basis = torch.tensor(basis / basis.sum(axis=1, keepdims=True), dtype=torch.float32)
    weights = torch.zeros(EQ_BANDS, requires_grad=True)
    optimiser = torch.optim.Adam([weights], lr=0.1)
    target = torch.tensor(np.asarray(embedding, np.float32))
    cap = cap_db / 10 * np.log(10)

    def gains():
        g = torch.exp(cap * torch.tanh(basis @ weights))
        return g / ((g * average).sum() / average.sum())  # the same loudness

    for _ in range(EQ_STEPS):
        g = gains()
        cosines = []
        for p in parts:
            e = model(p * g).mean(0)
            cosines.append((e / e.norm() * target).sum())
        loss = -torch.stack(cosines).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return torch.log(gains()).detach().numpy()


def apply_eq(samples: np.ndarray, rate: int, log_gain: np.ndarray) -> np.ndarray:
    """`samples` filtered by the mel-band gains (held beyond the band centres, faded to 0 dB
    between 8 and 11 kHz), at the same peak."""
    import librosa
    from scipy import signal
    centres = librosa.mel_frequencies(MEL_BANDS + 2, fmax=ENCODER_RATE_HZ / 2)[1:-1]
    freqs, _, spec = signal.stft(np.asarray(samples, np.float64), rate, nperseg=1024, noverlap=768)
    gain = np.interp(freqs, centres, log_gain) * (1 - np.clip((freqs - 8000) / 3000, 0, 1))
    _, y = signal.istft(spec * np.exp(gain / 2)[:, None], rate, nperseg=1024, noverlap=768)
    y = y[:len(samples)]
    return (y / max(np.abs(y).max(), 1e-9) * np.abs(samples).max()).astype(np.float32)


def enrolled(engine, name: str, clips, cond_dir: str) -> dict:
    """The voice's conditioning at today's defaults, enrolled on `clips` once and kept in `cond_dir`
    (DIR/VOICE.auto.vVERSION.npz, the layout base_scales.py writes)."""
    cached = Path(cond_dir) / f"{name}.auto.v{engine.version}.npz"
    if cached.is_file():
        return dict(np.load(cached))
    cond = engine.prepare_conditioning(clips)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cached, **cond)
    return cond


def cached_voices(engine, names, cond_dir: str, encoder):
    """(name, clips, held-out clip's GE2E embedding, conditioning) of each voice in `names` whose
    enrollment clone_quality.py kept in `cond_dir` (DIR/VOICE.vVERSION.npz, on all clips but the
    last); the others are named and skipped."""
    from voxmith.audio import load_audio, to_mono

    for name in names:
        cached = Path(cond_dir) / f"{name}.v{engine.version}.npz"
        if not cached.is_file():
            print(f"{name}: no {cached}; enroll it with clone_quality.py --cond-dir first")
            continue
        clips = [load_audio(p) for p in sorted((VOICES_DIR / name).iterdir()) if p.suffix.lower() in AUDIO_EXT]
        yield name, clips, encoder.embed(to_mono(clips[-1].samples), clips[-1].sample_rate_hz), dict(np.load(cached))


def dev_figures(takes, held_out: np.ndarray, encoder, transcriber, mos_model) -> dict:
    """What a listener gets from the takes of DEV_SENTENCES (22.05 kHz, in order): mean GE2E cosine to
    the held-out clip's embedding, Whisper's word error rate over all of them, mean DistillMOS."""
    from voxmith.speaker import cosine_similarity

    secs = [cosine_similarity(encoder.embed(t, 22050), held_out) for t in takes]
    errors = words = 0
    for sentence, take in zip(DEV_SENTENCES, takes):
        wrong, count = word_errors(sentence, transcriber.transcribe(take, 22050, language="en").text)
        errors, words = errors + wrong, words + count
    return {"secs": float(np.mean(secs)), "mos": float(np.mean([mos_model.score(t, 22050) for t in takes])),
            "wer": errors / max(words, 1)}


def spoken_row(engine, name: str, variant: dict, cond: dict, settings, held_out: np.ndarray, models) -> dict:
    """DEV_SENTENCES said by `engine` with `cond` at `settings` (sentence k at seed k) and scored
    (dev_figures; `models`: encoder, transcriber, naturalness model), as a row {voice, variant (as
    JSON), secs, mos, wer}, printed."""
    from voxmith.text import normalize_text

    takes = [engine.synthesize(normalize_text(text), cond, settings, seed=k)[0].samples
             for k, text in enumerate(DEV_SENTENCES)]
    row = {"voice": name, "variant": json.dumps(variant), **dev_figures(takes, held_out, *models)}
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return row


def save_rows(out: str, engine, rows) -> None:
    """The rows so far, with the engine's version and the sentences, as JSON at `out`."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps({"engine_version": engine.version, "sentences": DEV_SENTENCES, "rows": rows},
                                    indent=1))


def print_summary(rows, key: str) -> None:
    """One line per value of row[key]: voices, mean SECS / MOS / WER, the lowest SECS and MOS."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[key], []).append(row)
    for name, sel in groups.items():
        low_secs, low_mos = min(sel, key=lambda r: r["secs"]), min(sel, key=lambda r: r["mos"])
        print(f"{name:44s} voices {len(sel):2d} SECS {np.mean([r['secs'] for r in sel]):.3f} "
              f"MOS {np.mean([r['mos'] for r in sel]):.2f} WER {100 * np.mean([r['wer'] for r in sel]):.1f} % "
              f"(lowest SECS {low_secs['voice']} {low_secs['secs']:.3f}, MOS {low_mos['voice']} {low_mos['mos']:.2f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="")
    ap.add_argument("--cond-dir", required=True)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "similarity_levers_run.json"))
    lever = ap.add_mutually_exclusive_group(required=True)
    lever.add_argument("--settings")
    lever.add_argument("--takes", type=int)
    lever.add_argument("--eq", choices=("ltas", "ge2e"))
    ap.add_argument("--eq-cap-db", type=float, default=6.0)
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to benchmark.")
        return 0
    from voxmith.asr import get_transcriber
    from voxmith.audio import load_audio, to_mono
    from voxmith.engines.piper_vc import PiperVCEngine, guard
    from voxmith.quality import get_naturalness_model
    from voxmith.speaker import cosine_similarity, get_speaker_encoder
    from voxmith.text import normalize_text

    engine = PiperVCEngine(device="cpu")
    defaults = engine.settings_class()
    encoder, mos_model, transcriber = get_speaker_encoder("cpu"), get_naturalness_model(), get_transcriber()
    spoken = [normalize_text(s) for s in DEV_SENTENCES]
    names = [v for v in args.voices.split(",") if v] or sorted(p.name for p in VOICES_DIR.iterdir() if p.is_dir())
    variants = [json.loads(v) for v in args.settings.split(";")] if args.settings else [{}]
    rows = []

    def figures(takes) -> dict:
        return dev_figures(takes, held_out, encoder, transcriber, mos_model)

    for name in names:
        clips = [load_audio(p) for p in sorted((VOICES_DIR / name).iterdir()) if p.suffix.lower() in AUDIO_EXT]
        held_out = encoder.embed(to_mono(clips[-1].samples), clips[-1].sample_rate_hz)
        cond = enrolled(engine, name, clips[:-1], args.cond_dir)
        embedding = np.asarray(cond["target_embedding"], np.float32)
        t, start = time.perf_counter(), len(rows)
        if args.settings:
            for variant in variants:
                settings = replace(defaults, **variant)
                takes = [engine.synthesize(text, cond, settings, seed=k)[0].samples for k, text in enumerate(spoken)]
                rows.append({"voice": name, "lever": json.dumps(variant), **figures(takes)})
        elif args.takes:
            first, nearest = [], []
            for k, text in enumerate(spoken):
                takes = [engine.synthesize(text, cond, defaults, seed=k + 1000 * j)[0].samples for j in range(args.takes)]
                near = [cosine_similarity(encoder.embed(x, 22050), embedding) for x in takes]
                first.append(takes[0])
                nearest.append(takes[int(np.argmax(near))])
            rows.append({"voice": name, "lever": "first take", **figures(first)})
            rows.append({"voice": name, "lever": f"nearest of {args.takes} takes", **figures(nearest)})
        else:
            check = [(engine.synthesize(normalize_text(s), cond, defaults, seed=k)[0].samples, 22050)
                     for k, s in enumerate(guard.CHECK_SENTENCES)]
            if args.eq == "ltas":
                gain = eq_ltas(check, [(to_mono(c.samples), c.sample_rate_hz) for c in clips[:-1]], args.eq_cap_db)
            else:
                gain = eq_ge2e(check, embedding, args.eq_cap_db, encoder)
            plain = [engine.synthesize(text, cond, defaults, seed=k)[0].samples for k, text in enumerate(spoken)]
            rows.append({"voice": name, "lever": "no equaliser", **figures(plain)})
            rows.append({"voice": name, "lever": f"{args.eq} equaliser, cap {args.eq_cap_db:g} dB",
                         "gain_db": (gain * 10 / np.log(10)).round(1).tolist(),
                         **figures([apply_eq(x, 22050, gain) for x in plain])})
        for row in rows[start:]:
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                              if k != "gain_db"}), flush=True)
        print(f"  {name}: {time.perf_counter() - t:.0f}s", flush=True)
        if args.out:
            save_rows(args.out, engine, rows)
    print_summary(rows, "lever")
    return 0


if __name__ == "__main__":
    sys.exit(main())
