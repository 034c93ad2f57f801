"""The speaker encoder's input: a clip at 16 kHz, levelled, with long pauses removed, as 40-band
mel frames (official `encoder/audio.py`). Audio I/O only; the model is in `speaker_encoder.py`.

The mel frames are power (not log) mel spectra with librosa's Slaney filters, centred frames
zero-padded at the ends (the default of librosa 0.9.2, which the official code pins; passed
explicitly so another librosa default cannot change the frames).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.ndimage import binary_dilation

from voxmith.audio.dsp import resample

from .hparams import SAMPLE_RATE_HZ, EncoderAudio

INT16_MAX = 2 ** 15 - 1


def _webrtcvad():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad imports pkg_resources
        import webrtcvad
    return webrtcvad


def normalize_volume(wav: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Raise a quiet clip to `target_dbfs` (mean power); louder clips are left as they are. Digital
    silence is returned as it is (the official formula would turn it into NaN)."""
    power = float(np.mean(np.square(wav, dtype=np.float64))) if len(wav) else 0.0
    if power <= 0.0:
        return wav
    change_db = target_dbfs - 10 * np.log10(power)
    if change_db < 0:
        return wav
    return wav * (10 ** (change_db / 20))


def _moving_average(flags: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of 0/1 flags (zero-padded so the output has the input's length)."""
    padded = np.concatenate((np.zeros((width - 1) // 2), flags, np.zeros(width // 2)))
    sums = np.cumsum(padded, dtype=float)
    sums[width:] = sums[width:] - sums[:-width]
    return sums[width - 1:] / width


def trim_long_silences(wav: np.ndarray, audio: EncoderAudio = EncoderAudio()) -> np.ndarray:
    """Remove pauses longer than `vad_max_silence_windows` VAD windows (WebRTC VAD, most
    aggressive mode, smoothed). The clip is first cut to a whole number of VAD windows."""
    window = audio.vad_window_ms * SAMPLE_RATE_HZ // 1000
    wav = wav[:len(wav) - len(wav) % window]
    pcm = (np.round(wav * INT16_MAX)).astype(np.int16).tobytes()
    vad = _webrtcvad().Vad(3)
    flags = np.array([vad.is_speech(pcm[start * 2:(start + window) * 2], sample_rate=SAMPLE_RATE_HZ)
                      for start in range(0, len(wav), window)])
    mask = np.round(_moving_average(flags, audio.vad_moving_average_width)).astype(bool)
    mask = binary_dilation(mask, np.ones(audio.vad_max_silence_windows + 1))
    return wav[np.repeat(mask, window)]


def preprocess_wav(wav: np.ndarray, sample_rate_hz: int, audio: EncoderAudio = EncoderAudio(),
                   trim_silence: bool = True) -> np.ndarray:
    """A mono clip as the encoder was trained on it: 16 kHz, levelled, long pauses removed."""
    wav = resample(np.asarray(wav, dtype=np.float32), sample_rate_hz, SAMPLE_RATE_HZ)
    wav = normalize_volume(wav, audio.target_dbfs)
    if trim_silence:
        wav = trim_long_silences(wav, audio)
    return wav


def mel_frames(wav: np.ndarray, audio: EncoderAudio = EncoderAudio(), mel_bands: int = 40) -> np.ndarray:
    """(frames, mel_bands) float32 power mel spectrum of a 16 kHz clip."""
    import librosa

    mel = librosa.feature.melspectrogram(y=np.asarray(wav, dtype=np.float32), sr=SAMPLE_RATE_HZ,
                                         n_fft=audio.window_samples, hop_length=audio.hop_samples,
                                         n_mels=mel_bands, pad_mode="constant")
    return mel.astype(np.float32).T
