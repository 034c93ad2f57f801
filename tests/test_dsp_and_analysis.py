"""Normalisation, trimming and the clip measurements behind `voices show`."""

from __future__ import annotations

import numpy as np
import pytest

from voxmith.audio import Audio, analyse_audio, loudness_normalize, peak_normalize, trim_silence
from voxmith.audio.dsp import integrated_loudness


def test_loudness_normalize_reaches_target(demo_audio):
    x, rate = demo_audio.samples, demo_audio.sample_rate_hz
    for target in (-35.0, -30.0, -23.0):  # louder targets hit the peak ceiling
        y = loudness_normalize(x, rate, target)
        assert integrated_loudness(y, rate) == pytest.approx(target, abs=0.5)


def test_loudness_normalize_never_clips(demo_audio):
    y = loudness_normalize(demo_audio.samples, demo_audio.sample_rate_hz, target_lufs=0.0)
    assert np.max(np.abs(y)) <= 10 ** (-1 / 20) + 1e-6


def test_peak_normalize(demo_audio):
    y = peak_normalize(demo_audio.samples * 0.1, peak_dbfs=-3.0)
    assert 20 * np.log10(np.max(np.abs(y))) == pytest.approx(-3.0, abs=0.01)
    silent = np.zeros(100, np.float32)
    assert np.array_equal(peak_normalize(silent), silent)


def test_trim_silence_removes_padding_but_keeps_speech(demo_audio):
    rate = demo_audio.sample_rate_hz
    speech = demo_audio.samples
    padded = np.concatenate([np.zeros(rate * 2, np.float32), speech, np.zeros(rate * 3, np.float32)])
    trimmed = trim_silence(padded, rate, pad_ms=100)
    assert trimmed.shape[0] < speech.shape[0] + 0.5 * rate  # 5 s of silence gone
    assert trimmed.shape[0] > speech.shape[0] - 1.0 * rate  # speech kept
    assert trim_silence(np.zeros(rate, np.float32), rate).shape[0] == 0


def test_analysis_measures_real_clip(demo_audio):
    stats = analyse_audio(demo_audio)
    assert stats.duration_s == pytest.approx(demo_audio.duration_s)
    assert -30 < stats.loudness_lufs < -15
    assert stats.clipped_fraction == 0.0
    assert stats.snr_db > 20  # LJ Speech is a clean studio recording
    assert 0.7 < stats.speech_ratio <= 1.0


def test_noise_lowers_snr(demo_audio):
    rng = np.random.default_rng(0)
    noisy = demo_audio.samples + rng.normal(0, 0.03, demo_audio.frames).astype(np.float32)
    clean_snr = analyse_audio(demo_audio).snr_db
    noisy_snr = analyse_audio(Audio(noisy, demo_audio.sample_rate_hz)).snr_db
    assert noisy_snr < clean_snr - 10


def test_clipping_detected(demo_audio):
    loud = np.clip(demo_audio.samples * 8, -1, 1)
    assert analyse_audio(Audio(loud, demo_audio.sample_rate_hz)).clipped_fraction > 0.01


def test_silence_lowers_speech_ratio(demo_audio):
    rate = demo_audio.sample_rate_hz
    padded = np.concatenate([demo_audio.samples, np.zeros(rate * 10, np.float32)])
    assert analyse_audio(Audio(padded, rate)).speech_ratio < 0.6 * analyse_audio(demo_audio).speech_ratio

