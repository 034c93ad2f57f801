"""How much speaker similarity a conversion of the base voice's take could reach at most (piper-vc).

For each shared voice's enrollment clips (at most two, first 14 s each, transcribed by Whisper), the
base voice that engine 12 enrolled it with says the clip's words; its take is DTW-aligned to the clip
(parallel.dtw_path, as enrollment aligns) and given the clip's own features, frame by frame, instead of
converted ones (an oracle: no mapping can know them better):
- `pitch`: the clip's F0 by TD-PSOLA on the base voice's waveform (render.render, envelope unchanged);
- `pitch+envelope`: and the clip's spectral envelope by the difference filter (the engine's rendering);
- `global pitch+envelope`: the clip's envelope, the pitch moved by one median ratio;
- `world`: WORLD resynthesis of the clip's F0, envelope and aperiodicity on the base voice's timing;
- `world, base excitation + clip envelope` (`..., + clip loudness`): WORLD resynthesis of the base
  voice's F0 (moved by one median ratio) and aperiodicity with the clip's envelope, keeping the base
  voice's loudness (c0) or taking the clip's;
- `world, clip excitation + base envelope`: the clip's F0 and aperiodicity, the base voice's envelope;
against the base voice alone and the clip itself. Scored as clone_quality.py scores: GE2E cosine to the
held-out last clip, DistillMOS. Development only: it measures where similarity can come from, it
tunes nothing.

    PYTHONPATH=src .venv/bin/python benchmarks/conversion_ceiling.py [--voices emma,pat] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clone_quality import AUDIO_EXT, VOICES_DIR  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
CLIP_SECONDS = 14.0
VARIANTS = ("base voice", "pitch", "pitch+envelope", "global pitch+envelope", "world",
            "world, base excitation + clip envelope", "world, base excitation + clip envelope + clip loudness",
            "world, clip excitation + base envelope", "clip itself")


def oracle_takes(base_take: np.ndarray, clip: np.ndarray) -> dict:
    """The variants above for one clip (both float32 at world.SAMPLE_RATE_HZ, trimmed)."""
    from voxmith.engines.piper_vc import render, world
    from voxmith.engines.piper_vc.parallel import dtw_path

    source, target = world.analyse(base_take), world.analyse(clip, accurate_f0=True)
    path = dtw_path(source.mcep[:, 1:], target.mcep[:, 1:])
    f0 = target.f0[path]
    both = (f0 > 0) & (source.f0 > 0)
    aligned = world.WorldFeatures(np.where(both, f0, source.f0), target.mcep[path], target.ap[path])
    ratio = np.exp(np.median(np.log(target.f0[target.f0 > 0])) - np.median(np.log(source.f0[source.f0 > 0])))
    envelope_at_base_loudness = aligned.mcep.copy()
    envelope_at_base_loudness[:, 0] = source.mcep[:, 0]
    return {
        "base voice": base_take,
        "pitch": render.render(base_take, source, world.WorldFeatures(aligned.f0, source.mcep, source.ap)),
        "pitch+envelope": render.render(base_take, source, aligned),
        "global pitch+envelope": render.render(base_take, source, world.WorldFeatures(source.f0 * ratio,
                                                                                        aligned.mcep, source.ap)),
        "world": world.synthesise(world.WorldFeatures(f0, target.mcep[path], target.ap[path])),
        VARIANTS[5]: world.synthesise(world.WorldFeatures(source.f0 * ratio, envelope_at_base_loudness, source.ap)),
        VARIANTS[6]: world.synthesise(world.WorldFeatures(source.f0 * ratio, aligned.mcep, source.ap)),
        VARIANTS[7]: world.synthesise(world.WorldFeatures(f0, source.mcep, target.ap[path])),
        "clip itself": clip,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voices", default="")
    ap.add_argument("--out", default=str(RESULTS / "conversion_ceiling.json"))
    args = ap.parse_args()
    if not VOICES_DIR.is_dir():
        print(f"{VOICES_DIR} not found; nothing to measure.")
        return 0
    from voxmith.asr import get_transcriber
    from voxmith.audio import load_audio, to_mono, trim_silence
    from voxmith.engines.piper_vc import world
    from voxmith.engines.piper_vc.base_voice import get_base_voice
    from voxmith.engines.piper_vc.parallel import prepare_clip
    from voxmith.quality import get_naturalness_model
    from voxmith.speaker import cosine_similarity, get_speaker_encoder

    enrolled = json.loads((RESULTS / "clone_quality_engine12.json").read_text())["rows"]
    bases = {row["voice"]: row["base_voice"] for row in enrolled}
    names = [v for v in args.voices.split(",") if v] or sorted(bases)
    encoder, mos_model, transcriber = get_speaker_encoder("cpu"), get_naturalness_model(), get_transcriber()
    rate = world.SAMPLE_RATE_HZ
    rows = []
    for name in names:
        files = sorted(p for p in (VOICES_DIR / name).iterdir() if p.suffix.lower() in AUDIO_EXT)
        held = load_audio(files[-1])
        held_out = encoder.embed(to_mono(held.samples), held.sample_rate_hz)
        voice = get_base_voice(bases[name])
        for path in files[:-1][:2]:
            clip = load_audio(path)
            samples = to_mono(clip.samples)[: int(CLIP_SECONDS * clip.sample_rate_hz)]
            prepared = prepare_clip(samples, clip.sample_rate_hz)
            text = transcriber.transcribe(prepared, rate, language="en").text
            if len(text.split()) < 4:
                continue
            take = trim_silence(voice.speak(text, seed=0).samples, rate)
            row = {"voice": name, "clip": path.name, "base_voice": bases[name]}
            for variant, audio in oracle_takes(take, prepared).items():
                audio = np.asarray(audio, np.float32)
                audio = 0.9 * audio / max(float(np.abs(audio).max()), 1e-9)
                row[variant] = {"secs": round(float(cosine_similarity(encoder.embed(audio, rate), held_out)), 4),
                                "mos": round(float(mos_model.score(audio, rate)), 3)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    summary = {}
    for variant in VARIANTS:
        secs = [row[variant]["secs"] for row in rows]
        worst = min(rows, key=lambda row: row[variant]["secs"])
        summary[variant] = {"secs": round(float(np.mean(secs)), 4),
                            "mos": round(float(np.mean([row[variant]["mos"] for row in rows])), 3),
                            "lowest_secs": worst[variant]["secs"], "lowest_secs_voice": worst["voice"]}
        print(f"{variant:22s} SECS {summary[variant]['secs']:.3f} (lowest {worst['voice']} "
              f"{worst[variant]['secs']:.3f})  DistillMOS {summary[variant]['mos']:.2f}")
    Path(args.out).write_text(json.dumps({"what": __doc__.splitlines()[0], "clips": len(rows),
                                          "summary": summary, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
