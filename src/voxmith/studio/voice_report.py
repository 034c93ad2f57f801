"""`voices show`: is this voice good cloning material?

Per clip: the `ClipStats` measurements (speech measured with Silero VAD: `speech_stats`), a
speaker-consistency score (cosine of the clip's GE2E embedding to the voice's mean embedding) and
plain-words flags. For the voice: total speech and advice. Embeddings go through the conditioning
cache, so a second report does not recompute them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from shlex import quote
from typing import Dict, List, Optional

import numpy as np

from voxmith.audio import Audio, analyse_audio, load_audio, resample, to_mono
from voxmith.audio.analysis import ClipStats
from voxmith.audio.duplicates import same_recordings
from voxmith.datasets.slicing import FRAME_MS, VAD_RATE_HZ, silero_speech_mask
from voxmith.errors import AudioError
from voxmith.progress import ProgressCallback, report
from voxmith.speaker import ENCODER_ID, cosine_similarity, get_speaker_encoder, mean_embedding
from voxmith.studio.conditioning import CacheKey
from voxmith.studio.voices import Voice

SPEAKER_NAMESPACE = "speaker"
# Same-speaker clips typically score 0.80-0.95 against their voice's mean; a clip well below its
# siblings is likely another speaker, a different microphone/room, or mostly noise or music.
OUTLIER_ABSOLUTE = 0.70
OUTLIER_MARGIN = 0.12  # below the median of the other clips by this much
NOISY_SNR_DB = 15.0
CLIPPING_FRACTION = 0.001
# Speech through an 8 kHz telephone line keeps nothing above 4 kHz; wideband recordings of the shared
# voices keep 99.9 % of their energy below 6.4 kHz or more (benchmarks/results/speaker_flag_calibration.json).
NARROW_BAND_HZ = 4500.0
WEAK_SPEECH_S = 10.0
GOOD_SPEECH_S = 30.0


@dataclass
class ClipReport:
    file: str
    stats: ClipStats
    consistency: Optional[float]
    flags: List[str] = field(default_factory=list)


@dataclass
class VoiceReport:
    name: str
    clips: List[ClipReport]
    total_duration_s: float
    total_speech_s: float
    similarity_matrix: np.ndarray  # clip-to-clip cosine similarity
    advice: List[str]
    missing: List[str] = field(default_factory=list)  # clips voice.json lists that are gone from the folder
    duplicates: Dict[str, str] = field(default_factory=dict)  # clip -> the earlier clip with the same audio

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "total_duration_s": round(self.total_duration_s, 3),
            "total_speech_s": round(self.total_speech_s, 3),
            "advice": self.advice,
            "clips": [{"file": c.file, **c.stats.to_dict(),
                       "consistency": None if c.consistency is None else round(c.consistency, 4),
                       "flags": c.flags} for c in self.clips],
            "similarity_matrix": np.round(self.similarity_matrix, 4).tolist(),
            "missing": self.missing,
            "duplicates": self.duplicates,
        }


def voice_embeddings(voice: Voice, device: str = "cpu",
                     progress: Optional[ProgressCallback] = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(per-clip embeddings in clip order, speaker embedding, was_cached), cached per clip set."""
    paths = voice.clip_paths
    key = CacheKey(SPEAKER_NAMESPACE, ENCODER_ID, voice.fingerprint())

    def compute():
        encoder = get_speaker_encoder(device)
        embeddings = []
        for i, path in enumerate(paths):
            report(progress, "embedding clips", i, len(paths), path.name, unit="clip")
            audio = load_audio(path)
            embeddings.append(encoder.embed(audio.samples, audio.sample_rate_hz))
        report(progress, "embedding clips", len(paths), len(paths), unit="clip")
        return {"clip_embeddings": np.stack(embeddings), "speaker_embedding": mean_embedding(embeddings)}

    arrays, cached = voice.cache.get_or_compute(key, compute, {"clips": [p.name for p in paths]})
    return arrays["clip_embeddings"], arrays["speaker_embedding"], cached


def speech_stats(stats: ClipStats, audio: Audio) -> ClipStats:
    """`stats` with its speech measured by Silero VAD instead of WebRTC's.

    WebRTC's VAD (behind `analyse_audio`) calls loud broadband noise speech: a clip of white noise
    read as 100 % speech and counted towards the voice's total. Silero calls it, tones and silence
    non-speech, and on real recordings finds about as much speech. Only the report switches: the SNR
    estimate and `analyse_audio`'s other callers keep WebRTC's frames."""
    mask = silero_speech_mask(resample(to_mono(audio.samples), audio.sample_rate_hz, VAD_RATE_HZ))
    return replace(stats, speech_ratio=float(mask.mean()) if mask.size else 0.0,
                   speech_s=float(np.count_nonzero(mask)) * FRAME_MS / 1000.0)


def _flags(stats: ClipStats, consistency: Optional[float], others_median: Optional[float]) -> List[str]:
    flags = []
    if stats.clipped_fraction >= CLIPPING_FRACTION:
        flags.append(f"clipping ({stats.clipped_fraction:.2%} of samples at full scale)")
    if stats.snr_db < NOISY_SNR_DB:
        flags.append(f"noisy (SNR about {stats.snr_db:.0f} dB)")
    if stats.speech_ratio < 0.3:
        flags.append(f"mostly non-speech ({stats.speech_ratio:.0%} speech)")
    if stats.sample_rate_hz <= 8000:
        flags.append(f"telephone audio ({stats.sample_rate_hz / 1000:g} kHz): clones will sound muffled; "
                     "use a recording at 16 kHz or more")
    elif 0 < stats.bandwidth_hz < NARROW_BAND_HZ:
        flags.append(f"narrow-band audio (nothing above {stats.bandwidth_hz / 1000:.1f} kHz, like a phone "
                     "call): clones will sound muffled")
    if consistency is not None and (consistency < OUTLIER_ABSOLUTE or
                                    (others_median is not None and consistency < others_median - OUTLIER_MARGIN)):
        flags.append("outlier: sounds unlike the other clips (another speaker, room or microphone?)")
    return flags


def _advice(total_speech_s: float, clips: List[ClipReport], voice: Voice, missing: List[str]) -> List[str]:
    advice = []
    if missing:
        advice.append(f"{len(missing)} clip(s) of this voice are missing from {voice.path}: {', '.join(missing)} "
                      f"(deleted or moved?). Put them back, or add clips with "
                      f"`voxmith voices add {quote(voice.name)} FILE... --append`.")
        if not clips:
            return advice
    if total_speech_s < WEAK_SPEECH_S:
        advice.append(f"Only {total_speech_s:.1f} s of speech: under {WEAK_SPEECH_S:.0f} s cloning will be "
                      "weak. Add more clips of this speaker.")
    elif total_speech_s < GOOD_SPEECH_S:
        advice.append(f"{total_speech_s:.1f} s of speech: enough for zero-shot cloning; "
                      f"{GOOD_SPEECH_S:.0f} s or more gives steadier results.")
    else:
        advice.append(f"{total_speech_s:.1f} s of speech: good for zero-shot cloning. For fine-tuning, "
                      "prepare a dataset from 10+ minutes of recordings.")
    flagged = [c.file for c in clips if c.flags]
    if flagged:
        advice.append("Check or remove the flagged clip(s): " + ", ".join(flagged) + ".")
    return advice


def find_duplicates(paths: List[Path]) -> Dict[str, str]:
    """Clips that hold another clip's recording (byte for byte, or re-encoded: voxmith.audio.duplicates):
    {clip: the first clip with that recording}."""
    return {later.name: first.name for later, first in same_recordings(paths).items()}


def analyse_voice(voice: Voice, device: str = "cpu",
                  progress: Optional[ProgressCallback] = None) -> VoiceReport:
    paths = voice.clip_paths
    duplicates = find_duplicates(paths)
    stats, problems = [], []
    for i, path in enumerate(paths):
        report(progress, "analysing clips", i, len(paths), path.name, unit="clip")
        try:
            audio = load_audio(path, mono=False)
            stats.append(speech_stats(analyse_audio(audio), audio))
        except AudioError as err:  # a file dropped into the folder by hand: name every such file at once
            problems.append(str(err))
    report(progress, "analysing clips", len(paths), len(paths), unit="clip")
    if problems:
        raise voice.unusable(problems)

    if paths:
        clip_embeddings, speaker_embedding, _ = voice_embeddings(voice, device, progress)
        similarity = np.clip(clip_embeddings @ clip_embeddings.T, -1.0, 1.0)
        consistency = [cosine_similarity(e, speaker_embedding) for e in clip_embeddings]
    else:
        similarity, consistency = np.zeros((0, 0)), []
    clips = []
    for i, (path, s) in enumerate(zip(paths, stats)):
        others = [c for j, c in enumerate(consistency) if j != i]
        median = float(np.median(others)) if len(others) >= 2 else None
        c = consistency[i] if len(paths) >= 2 else None  # one clip is trivially consistent
        flags = _flags(s, c, median)
        if path.name in duplicates:
            flags.insert(0, f"duplicate of {duplicates[path.name]} (the same recording; counted once)")
        clips.append(ClipReport(path.name, s, c, flags))
    # A clip added several times is still one recording's worth of speech.
    unique = [s for path, s in zip(paths, stats) if path.name not in duplicates]
    total_speech = sum(s.speech_s for s in unique)
    missing = voice.missing_clips
    return VoiceReport(voice.name, clips, sum(s.duration_s for s in unique), total_speech, similarity,
                       _advice(total_speech, clips, voice, missing), missing, duplicates)
