"""Clips whose names lie about their format, clips deleted behind voxmith's back, the same clip
added several times, and telephone audio: each is stored, reported or flagged as a user expects."""

from __future__ import annotations

import shutil

import pytest
import soundfile as sf
from click.testing import CliRunner

from voxmith.cli.main import cli
from voxmith.errors import VoiceError


def test_clips_are_stored_with_the_extension_of_their_format(studio, demo_audio, tmp_path, shared_voices):
    wav_as_txt, flac_bare = tmp_path / "take one.txt", tmp_path / "take2"
    sf.write(wav_as_txt, demo_audio.samples, demo_audio.sample_rate_hz, format="WAV")
    sf.write(flac_bare, demo_audio.samples, demo_audio.sample_rate_hz, format="FLAC")
    mp3_as_dat = tmp_path / "take3.dat"
    shutil.copy(next((shared_voices / "snakes").glob("*.mp3")), mp3_as_dat)
    voice = studio.voices.add("odd", [wav_as_txt, flac_bare, mp3_as_dat])
    assert [p.name for p in voice.clip_paths] == ["take2.flac", "take3.mp3", "take_one.wav"]
    assert (voice.path / "take_one.wav").read_bytes() == wav_as_txt.read_bytes()  # copied as is
    assert len(voice.load_clips()) == 3


def test_a_format_without_an_extension_of_its_own_is_stored_as_a_decoded_copy(studio, demo_audio, tmp_path):
    pytest.importorskip("av")
    from voxmith.audio.encode import encode_audio

    aac_as_bin = tmp_path / "memo.bin"  # raw AAC: only FFmpeg reads it, by its contents
    aac_as_bin.write_bytes(encode_audio(demo_audio.samples, demo_audio.sample_rate_hz, "aac"))
    voice = studio.voices.add("memo", [aac_as_bin])
    assert [p.name for p in voice.clip_paths] == ["memo.flac"]
    assert abs(voice.load_clips()[0].duration_s - demo_audio.duration_s) < 0.1


def test_show_names_clips_deleted_from_the_folder(studio, demo_files):
    voice = studio.voices.add("gone", demo_files)
    for path in voice.clip_paths:
        path.unlink()
    report = studio.analyse_voice("gone")
    assert report.missing == ["lj_1.flac", "lj_2.flac"]
    assert "lj_1.flac, lj_2.flac are missing" in report.advice[0] or "missing from" in report.advice[0]
    assert "lj_1.flac" in report.advice[0] and "--append" in report.advice[0]
    result = CliRunner().invoke(cli, ["--home", str(studio.workspace.home), "voices", "show", "gone"])
    assert result.exit_code == 0 and "lj_2.flac" in result.output and "only 0.0 s" not in result.output.lower()
    with pytest.raises(VoiceError, match="lj_1.flac, lj_2.flac are missing"):
        voice.load_clips()


def test_the_same_clip_added_several_times_is_flagged_and_counted_once(studio, demo_files):
    once = studio.analyse_voice(studio.voices.add("once", demo_files[:1]).name)
    many = studio.analyse_voice(studio.voices.add("many", [demo_files[0]] * 4).name)
    assert len(many.clips) == 4
    assert many.total_speech_s == pytest.approx(once.total_speech_s)
    flagged = [c.file for c in many.clips if any(f.startswith("duplicate of ") for f in c.flags)]
    assert len(flagged) == 3 and len(set(many.duplicates.values())) == 1
    assert set(many.duplicates) == set(flagged) and "counted once" in many.clips[1].flags[0]


def test_a_clip_added_again_in_another_format_is_flagged_and_counted_once(studio, demo_files, tmp_path):
    # Before: only byte-identical files were caught; the shared voice 'pat' holds one take twice
    # (2.wav and 3.wav differ in their bytes), and voices show counted it twice.
    from voxmith.audio import load_audio, save_audio
    from voxmith.audio.dsp import resample

    audio = load_audio(demo_files[0])
    again = tmp_path / "take-again.mp3"  # after lj_*.flac: the report counts the first in name order
    save_audio(again, resample(audio.samples, audio.sample_rate_hz, 16000), 16000)
    report = studio.analyse_voice(studio.voices.add("twice", [demo_files[0], again, demo_files[1]]).name)
    once = studio.analyse_voice(studio.voices.add("distinct", demo_files).name)
    assert report.duplicates == {"take-again.mp3": demo_files[0].name}
    flags = {c.file: c.flags for c in report.clips}
    assert flags["take-again.mp3"][0] == f"duplicate of {demo_files[0].name} (the same recording; counted once)"
    assert not any(f.startswith("duplicate") for f in flags[demo_files[1].name])
    assert report.total_speech_s == pytest.approx(once.total_speech_s)


def test_telephone_audio_is_flagged(studio, demo_audio, tmp_path):
    from voxmith.audio.dsp import resample

    phone = tmp_path / "phone.wav"
    sf.write(phone, resample(demo_audio.samples, demo_audio.sample_rate_hz, 8000), 8000)
    # The same call, upsampled to 44.1 kHz: the rate says nothing, the bandwidth still does.
    upsampled = tmp_path / "phone_44k.wav"
    sf.write(upsampled, resample(resample(demo_audio.samples, demo_audio.sample_rate_hz, 8000), 8000, 44100), 44100)
    wide = tmp_path / "wide.wav"
    sf.write(wide, demo_audio.samples, demo_audio.sample_rate_hz)
    report = studio.analyse_voice(studio.voices.add("calls", [phone, upsampled, wide]).name)
    flags = {c.file: c.flags for c in report.clips}
    assert any(f.startswith("telephone audio (8 kHz)") for f in flags["phone.wav"])
    assert any(f.startswith("narrow-band audio") for f in flags["phone_44k.wav"])
    assert not any("band" in f or "telephone" in f for f in flags["wide.wav"])
