"""`voices show`: the per-clip analysis flags outliers and gives advice."""

from __future__ import annotations

import pytest


def test_demo_voice_report(studio):
    studio.import_demo_voice()
    report = studio.analyse_voice("demo")
    assert len(report.clips) == 2
    assert 15 < report.total_duration_s < 20
    assert all(c.consistency > 0.9 and not c.flags for c in report.clips)
    assert report.similarity_matrix.shape == (2, 2)
    assert any("zero-shot" in line for line in report.advice)
    data = report.to_dict()
    assert data["clips"][0]["file"] == "lj_1.flac" and "snr_db" in data["clips"][0]


def test_other_speaker_is_flagged_as_outlier(studio, shared_voices):
    tom = sorted((shared_voices / "tom").glob("*.wav"))
    intruder = shared_voices / "emma" / "1.wav"
    studio.voices.add("tom", tom + [intruder])
    report = studio.analyse_voice("tom")
    flagged = {c.file for c in report.clips if any("outlier" in f for f in c.flags)}
    assert flagged == {"1-2.wav"}  # the emma clip, renamed to avoid clashing with tom's 1.wav


def test_short_voice_gets_weak_advice(studio, demo_files, tmp_path):
    import soundfile as sf

    from voxmith.audio import load_audio

    audio = load_audio(demo_files[0])
    short = tmp_path / "short.wav"
    sf.write(short, audio.samples[: int(4 * audio.sample_rate_hz)], audio.sample_rate_hz)
    studio.voices.add("brief", [short])
    report = studio.analyse_voice("brief")
    assert "weak" in report.advice[0]
    assert report.clips[0].consistency is None  # one clip is trivially consistent


def test_noise_clip_is_not_counted_as_speech(studio, demo_audio, demo_files, tmp_path):
    """WebRTC's VAD calls loud broadband noise speech (a clip of white noise read as 100 % speech);
    the report measures speech with Silero, so noise counts for nothing and is flagged."""
    import numpy as np
    import soundfile as sf

    noise = tmp_path / "noise.wav"
    sf.write(noise, (np.random.default_rng(0).standard_normal(5 * 22050) * 0.1).astype(np.float32), 22050)
    studio.voices.add("mixed", [noise, demo_files[0]])
    report = studio.analyse_voice("mixed")
    by_file = {c.file: c for c in report.clips}
    assert by_file["noise.wav"].stats.speech_s < 0.5
    assert any("mostly non-speech" in f for f in by_file["noise.wav"].flags)
    speech = by_file[demo_files[0].name]
    assert not any("non-speech" in f for f in speech.flags)
    assert 0.7 * demo_audio.duration_s < speech.stats.speech_s <= demo_audio.duration_s
    # The voice's speech is the real clip's alone.
    assert report.total_speech_s == pytest.approx(speech.stats.speech_s + by_file["noise.wav"].stats.speech_s)
