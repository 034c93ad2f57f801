"""Measurements of one clip that tell a user whether it is good cloning material.

Loudness (EBU R128), peak and clipping, an SNR estimate and the fraction of time with speech.
Speech detection uses WebRTC's VAD (installed with resemblyzer); SNR compares the power of speech
frames with the clip's quietest frames, so it is an estimate, not a lab measurement.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from voxmith.audio.dsp import frame_rms_db, integrated_loudness, resample, to_mono
from voxmith.audio.io import Audio

VAD_RATE_HZ = 16000
VAD_FRAME_MS = 30
VAD_AGGRESSIVENESS = 2  # 0 (lenient) .. 3 (strict)
CLIP_LEVEL = 0.999  # samples at or above this magnitude count as clipped
SNR_CAP_DB = 90.0  # digital silence between words would otherwise give infinity
BANDWIDTH_ENERGY = 0.999  # the bandwidth is where this share of the energy lies below


@dataclass(frozen=True)
class ClipStats:
    duration_s: float
    sample_rate_hz: int
    channels: int
    loudness_lufs: float
    peak_dbfs: float
    clipped_fraction: float  # of all samples
    snr_db: float
    speech_ratio: float  # fraction of frames the VAD marks as speech
    speech_s: float
    bandwidth_hz: float = 0.0  # below this lies 99.9 % of the energy (about 4 kHz for telephone audio)

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) and np.isfinite(v) else v)
                for k, v in asdict(self).items()}


def speech_frames(mono: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Boolean speech flag for each 30 ms frame, from WebRTC's VAD at 16 kHz."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad imports the deprecated pkg_resources
        import webrtcvad

    pcm = resample(mono, sample_rate_hz, VAD_RATE_HZ)
    pcm16 = (np.clip(pcm, -1.0, 1.0) * 32767).astype("<i2")
    frame = VAD_RATE_HZ * VAD_FRAME_MS // 1000
    n_frames = pcm16.shape[0] // frame
    vad = webrtcvad.Vad(VAD_AGGRESSIVENESS)
    return np.array(
        [vad.is_speech(pcm16[i * frame:(i + 1) * frame].tobytes(), VAD_RATE_HZ) for i in range(n_frames)],
        dtype=bool,
    )


def speech_seconds(mono: np.ndarray, sample_rate_hz: int) -> float:
    """Seconds of `mono` that WebRTC's VAD calls speech."""
    return float(np.count_nonzero(speech_frames(mono, sample_rate_hz))) * VAD_FRAME_MS / 1000.0


def estimate_snr_db(mono: np.ndarray, sample_rate_hz: int, is_speech: np.ndarray) -> float:
    """Speech power over the noise floor, in dB.

    The noise floor is the level of the quietest tenth of the frames (pauses between words);
    the speech level is the mean power of the frames the VAD marks as speech. A clip with no
    pauses at all reads low, so this is a guide, not a measurement.
    """
    levels = frame_rms_db(mono, sample_rate_hz, VAD_FRAME_MS)[: is_speech.shape[0]]
    if levels.size == 0 or not is_speech.any():
        return 0.0
    noise_db = float(np.percentile(levels, 10))
    if noise_db <= -100.0:
        return SNR_CAP_DB  # digital silence between words
    speech_db = float(10.0 * np.log10(np.mean(10.0 ** (levels[is_speech] / 10.0))))
    return float(np.clip(speech_db - noise_db, -20.0, SNR_CAP_DB))


def audio_bandwidth_hz(mono: np.ndarray, sample_rate_hz: int) -> float:
    """The frequency below which `BANDWIDTH_ENERGY` of the signal's energy lies (Welch spectrum).
    Audio that went through an 8 kHz telephone line stays under 4 kHz whatever its sample rate."""
    from scipy.signal import welch

    if mono.shape[0] < 256:
        return sample_rate_hz / 2
    freqs, power = welch(mono, sample_rate_hz, nperseg=min(2048, mono.shape[0]))
    total = float(np.sum(power))
    if total <= 0:
        return 0.0
    cumulative = np.cumsum(power) / total
    return float(freqs[min(int(np.searchsorted(cumulative, BANDWIDTH_ENERGY)), freqs.shape[0] - 1)])


def analyse_audio(audio: Audio) -> ClipStats:
    """Measure a clip as loaded (before any downmix, so clipping and channels are the file's)."""
    samples = audio.samples
    mono = to_mono(samples)
    peak = float(np.max(np.abs(samples)))
    is_speech = speech_frames(mono, audio.sample_rate_hz)
    speech_ratio = float(is_speech.mean()) if is_speech.size else 0.0
    return ClipStats(
        duration_s=audio.duration_s,
        sample_rate_hz=audio.sample_rate_hz,
        channels=audio.channels,
        loudness_lufs=integrated_loudness(mono, audio.sample_rate_hz),
        peak_dbfs=float(20 * np.log10(max(peak, 1e-10))),
        clipped_fraction=float(np.mean(np.abs(samples) >= CLIP_LEVEL)),
        snr_db=estimate_snr_db(mono, audio.sample_rate_hz, is_speech),
        speech_ratio=speech_ratio,
        speech_s=float(is_speech.sum() * VAD_FRAME_MS / 1000.0),
        bandwidth_hz=audio_bandwidth_hz(mono, audio.sample_rate_hz),
    )
