"""Reading every kind of clip users have, and a clear error for each bad one."""

from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from voxmith.audio import check_usable, load_audio, save_audio
from voxmith.errors import AudioError
from tests.conftest import tone


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_subtypes_and_channels_load_to_same_signal(tmp_path, demo_audio, subtype, channels):
    original = demo_audio.samples
    data = original if channels == 1 else np.stack([original, original], axis=1)
    path = tmp_path / f"clip_{subtype}_{channels}.wav"
    sf.write(path, data, demo_audio.sample_rate_hz, subtype=subtype)
    audio = load_audio(path)
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.source_info["channels"] == channels
    assert audio.source_info["subtype"] == subtype
    np.testing.assert_allclose(audio.samples, original, atol=1e-4)


@pytest.mark.parametrize("ext,subtype", [(".flac", "PCM_16"), (".ogg", "VORBIS"), (".mp3", "MPEG_LAYER_III")])
def test_compressed_formats_load(tmp_path, demo_audio, ext, subtype):
    path = tmp_path / f"clip{ext}"
    sf.write(path, demo_audio.samples, demo_audio.sample_rate_hz, subtype=subtype)
    audio = load_audio(path)
    # Lossy codecs add delay/padding: compare duration and level, not samples.
    assert abs(audio.duration_s - demo_audio.duration_s) < 0.1
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
    assert rms(audio.samples) == pytest.approx(rms(demo_audio.samples), rel=0.15)


def test_resampling_keeps_pitch(tmp_path):
    rate = 48000
    path = tmp_path / "tone48k.wav"
    sf.write(path, tone(2.0, rate, freq=440.0), rate)
    audio = load_audio(path, sample_rate_hz=16000)
    assert audio.sample_rate_hz == 16000
    assert audio.frames == 32000
    spectrum = np.abs(np.fft.rfft(audio.samples))
    peak_hz = np.argmax(spectrum) * 16000 / audio.frames
    assert abs(peak_hz - 440.0) < 1.0


def test_stereo_kept_when_asked(tmp_path, demo_audio):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([demo_audio.samples, -demo_audio.samples], axis=1), demo_audio.sample_rate_hz)
    assert load_audio(path, mono=False).channels == 2
    # The two channels cancel when averaged: downmixing really averages them.
    assert np.max(np.abs(load_audio(path).samples)) < 1e-6


def test_every_shared_recording_loads(shared_voices):
    files = sorted(p for p in shared_voices.glob("*/*") if p.suffix in (".wav", ".mp3"))
    assert len(files) >= 20
    subtypes = set()
    for path in files:
        audio = load_audio(path, sample_rate_hz=16000)
        check_usable(audio)
        subtypes.add(audio.source_info["subtype"])
        assert audio.duration_s > 1.0
        assert np.max(np.abs(audio.samples)) > 0.01
    assert {"PCM_16", "FLOAT", "MPEG_LAYER_III"} <= subtypes


# --- bad input: each case names the file and the problem -------------------------------------

def _expect_error(path, *words):
    with pytest.raises(AudioError) as info:
        check_usable(load_audio(path))
    message = str(info.value)
    assert path.name in message
    for word in words:
        assert word in message.lower()
    return message


def test_missing_file(tmp_path):
    _expect_error(tmp_path / "nope.wav", "not found")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _expect_error(path, "empty")


def test_zero_length_wav(tmp_path):
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 22050)
    _expect_error(path, "zero length")


def test_all_silence(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(22050 * 3, dtype=np.float32), 22050)
    _expect_error(path, "silent")


def test_a_constant_offset_is_silence(tmp_path, demo_audio):
    """Full-scale DC (a broken interface, a damaged export) was taken for 3 s of speech, flagged only
    as clipping; a real clip with an offset is still fine."""
    path = tmp_path / "dc.wav"
    sf.write(path, np.full(22050 * 3, 0.5, dtype=np.float32), 22050, subtype="FLOAT")
    _expect_error(path, "silent")
    offset = tmp_path / "offset.wav"
    sf.write(offset, demo_audio.samples + 0.2, demo_audio.sample_rate_hz, subtype="FLOAT")
    check_usable(load_audio(offset))


def test_a_sample_rate_too_low_for_speech_is_refused(tmp_path, demo_audio):
    """A header claiming 1 Hz made a second of samples a 6-hour clip, accepted: resampling it for the
    speaker encoder or Whisper would take gigabytes. 8 kHz (telephone) audio is still accepted."""
    path = tmp_path / "one-hertz.wav"
    sf.write(path, demo_audio.samples[:22050], 1)
    _expect_error(path, "sample rate of 1 hz", "header")
    # convert reads recordings in blocks: a 1 Hz frame would be resampled into millions of samples
    from voxmith.audio.stream import read_blocks
    from voxmith.studio.conversion import ConvertRequest

    with pytest.raises(AudioError, match="sample rate of 1 Hz"):
        ConvertRequest(path, voice="v").validate()
    with pytest.raises(AudioError, match="sample rate of 1 Hz"):
        next(read_blocks(path, 22050))
    telephone = tmp_path / "telephone.wav"
    sf.write(telephone, load_audio(_demo_copy(tmp_path, demo_audio), sample_rate_hz=8000).samples, 8000)
    check_usable(load_audio(telephone))


def _demo_copy(tmp_path, demo_audio):
    path = tmp_path / "demo.wav"
    sf.write(path, demo_audio.samples, demo_audio.sample_rate_hz)
    return path


def test_too_short(tmp_path, demo_audio):
    path = tmp_path / "short.wav"
    clip = np.concatenate([np.zeros(22050), demo_audio.samples[30000:30000 + 22050 // 3], np.zeros(22050)])
    sf.write(path, clip, 22050)
    _expect_error(path, "too short")


def test_corrupt_header(tmp_path, demo_files):
    path = tmp_path / "corrupt.wav"
    data = bytearray(demo_files[0].read_bytes())
    data[:12] = b"GARBAGEHEAD!"
    path.write_bytes(bytes(data))
    _expect_error(path, "corrupt")  # from libsndfile, or from ffmpeg when it is installed


def test_text_file_with_audio_extension(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("this is not audio at all\n" * 50)
    with pytest.raises(AudioError, match="notes.mp3"):
        load_audio(path)


def test_unsupported_format(tmp_path, monkeypatch):
    path = tmp_path / "clip.xyz"
    path.write_bytes(b"\x00\x01" * 1000)
    # (Before, this passed by its folder's name, "test_unsupported_format0", whatever the message said.)
    if shutil.which("ffmpeg"):  # ffmpeg tried it: the message of every undecodable file
        assert _expect_error(path, "could not be decoded").startswith(f"Cannot read '{path}': it could not be decoded")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # a PATH where no ffmpeg exists
    assert "unsupported or unrecognised format '.xyz'" in _expect_error(path, "ffmpeg", "install")


def test_corrupt_m4a_without_ffmpeg_names_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # a PATH where no ffmpeg exists
    path = tmp_path / "phone.m4a"
    path.write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"\x00" * 100)
    _expect_error(path, "ffmpeg", "install")


@pytest.mark.parametrize("ext", [".opus", ".aac", ".mp3"])
def test_encoded_formats_roundtrip_without_ffmpeg(tmp_path, monkeypatch, demo_audio, ext):
    """save_audio encodes through PyAV; load_audio reads Opus/AAC through PyAV when ffmpeg is absent."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    path = save_audio(tmp_path / f"clip{ext}", demo_audio.samples, demo_audio.sample_rate_hz)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [path.name]
    audio = load_audio(path)
    assert abs(audio.duration_s - demo_audio.duration_s) < 0.1  # codec delay/padding only
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
    assert rms(audio.samples) == pytest.approx(rms(demo_audio.samples), rel=0.15)


def test_folder_is_not_a_file(tmp_path):
    folder = tmp_path / "clips.wav"
    folder.mkdir()
    _expect_error(folder, "folder")


# --- writing ----------------------------------------------------------------------------------

def test_save_is_atomic_and_roundtrips(tmp_path, demo_audio):
    out = tmp_path / "out" / "result.wav"
    save_audio(out, demo_audio.samples, demo_audio.sample_rate_hz)
    assert sorted(p.name for p in out.parent.iterdir()) == ["result.wav"]  # no temp files left
    np.testing.assert_allclose(load_audio(out).samples, demo_audio.samples, atol=1e-4)


def test_failed_save_keeps_previous_file(tmp_path, demo_audio):
    out = tmp_path / "keep.wav"
    save_audio(out, demo_audio.samples, demo_audio.sample_rate_hz)
    before = hashlib.sha256(out.read_bytes()).hexdigest()
    with pytest.raises(Exception):
        save_audio(out, demo_audio.samples, -5)  # invalid rate: the writer fails midway
    assert hashlib.sha256(out.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.wav"]


def test_save_clips_instead_of_wrapping(tmp_path):
    out = tmp_path / "loud.wav"
    save_audio(out, np.full(1000, 1.7, dtype=np.float32), 16000)
    assert np.all(load_audio(out).samples > 0.99)


def test_save_rejects_unknown_extension(tmp_path):
    with pytest.raises(AudioError, match=r"\.wav"):
        save_audio(tmp_path / "x.aiffz", np.zeros(100, np.float32), 16000)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
@pytest.mark.parametrize("ext,codec", [(".m4a", "aac"), (".opus", "libopus")])
def test_ffmpeg_formats_decode(tmp_path, demo_files, demo_audio, ext, codec):
    import subprocess

    path = tmp_path / f"phone{ext}"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(demo_files[0]), "-c:a", codec, str(path)], check=True)
    audio = load_audio(path, sample_rate_hz=demo_audio.sample_rate_hz)
    assert audio.source_info["subtype"] == "ffmpeg"
    assert abs(audio.duration_s - demo_audio.duration_s) < 0.15
    rms = lambda x: float(np.sqrt(np.mean(x ** 2)))  # noqa: E731
    assert rms(audio.samples) == pytest.approx(rms(demo_audio.samples), rel=0.2)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_ffmpeg_failure_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.m4a"
    path.write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"\x13" * 500)
    with pytest.raises(AudioError, match="broken.m4a': it could not be decoded"):
        load_audio(path)


def _mp3(path, demo_audio):
    sf.write(path, demo_audio.samples[:demo_audio.sample_rate_hz * 3], demo_audio.sample_rate_hz, format="MP3")
    return path


def test_a_corrupt_mp3_gets_one_message_from_voices_add_and_convert_and_no_decoder_noise(tmp_path, run, demo_files,
                                                                                      demo_audio, capfd):
    # Before: libmpg123 (inside libsndfile) printed "Note: Illegal Audio-MPEG-Header ... Trying to resync"
    # around our error, and `voices add` said "ffmpeg could not decode it (random.mp3: Invalid argument)"
    # where `convert` said "it could not be decoded (Invalid data found ...)" for the same file.
    noise = tmp_path / "random.mp3"
    noise.write_bytes(np.random.default_rng(5).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    data = _mp3(tmp_path / "real.mp3", demo_audio).read_bytes()
    headless = tmp_path / "header-only.mp3"
    headless.write_bytes(data[:200])
    capfd.readouterr()
    for path in (noise, headless):
        added = run("voices", "add", "alice", str(path))
        converted = run("convert", "--ref", str(demo_files[0]), str(path))  # refused before enrolling
        assert added.exit_code == converted.exit_code == 1, (added.output, converted.output)
        said = [next(line[line.index("Cannot read"):] for line in result.output.splitlines() if "Cannot read" in line)
                for result in (added, converted)]
        assert said[0] == said[1] and said[0].startswith(f"Cannot read '{path}': it could not be decoded (")
        assert "Errno" not in said[0] and "corrupt" in said[0]
    assert capfd.readouterr().err == ""  # nothing from the C decoders on the terminal


def test_a_truncated_mp3_loads_what_is_there_quietly(tmp_path, demo_audio, capfd):
    data = _mp3(tmp_path / "real.mp3", demo_audio).read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[:len(data) // 2])
    capfd.readouterr()
    whole, half = load_audio(tmp_path / "real.mp3"), load_audio(cut)
    assert whole.duration_s == pytest.approx(3.0, abs=0.05) and 1.0 < half.duration_s < 2.0
    assert capfd.readouterr().err == ""  # before: "Warning: Xing stream size off by more than 1% ..." twice
    # the same samples libsndfile decodes, without its decoder's noise
    native, _ = sf.read(tmp_path / "real.mp3", dtype="float32")
    assert np.abs(native - whole.samples).max() < 1e-4
    # A voice's clip lengths are read without decoding at every speak: quietly too, and as long as what
    # decodes (an MP3's frames counted: the cut file's Xing header still says 3 s, as libsndfile reads it).
    from voxmith.studio.conditioning_clips import clip_durations

    assert sf.info(cut).duration == pytest.approx(3.0, abs=0.05)
    assert clip_durations([cut, tmp_path / "real.mp3"]) == pytest.approx([half.duration_s, 3.0], abs=0.01)
    capfd.readouterr()
    clip_durations([cut])
    assert capfd.readouterr().err == ""


def _id3v2_tag() -> bytes:
    """An ID3v2.3 tag with one title frame, as taggers put in front of WAV, AIFF and FLAC files."""
    title = b"\x00" + b"Interview take 3"
    frame = b"TIT2" + len(title).to_bytes(4, "big") + b"\x00\x00" + title
    size = len(frame)  # synchsafe: 7 bits a byte
    return b"ID3\x03\x00\x00" + bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0)) + frame


@pytest.mark.parametrize("ext,fmt", [(".wav", "WAV"), (".flac", "FLAC"), (".aiff", "AIFF")])
def test_a_clip_with_an_id3_tag_in_front_is_read_as_its_own_format(tmp_path, demo_audio, ext, fmt):
    # Before: any file starting with "ID3" went to FFmpeg as an MP3 only: a tagged WAV was refused
    # "could not be decoded" (libsndfile reads all its frames), a tagged FLAC was labelled MP3.
    plain = tmp_path / f"plain{ext}"
    sf.write(plain, demo_audio.samples, demo_audio.sample_rate_hz, subtype="PCM_16")
    tagged = tmp_path / f"tagged{ext}"
    tagged.write_bytes(_id3v2_tag() + plain.read_bytes())
    assert sf.read(tagged)[0].shape[0] == demo_audio.frames  # libsndfile reads past the tag
    audio = load_audio(tagged)
    assert audio.source_info["format"] == fmt
    np.testing.assert_allclose(audio.samples, load_audio(plain).samples, atol=1e-6)


def test_an_mp3_under_an_odd_name_is_still_told_by_its_first_bytes(tmp_path, demo_audio):
    odd = tmp_path / "memo.bin"
    sf.write(tmp_path / "real.mp3", demo_audio.samples[:demo_audio.sample_rate_hz * 2], demo_audio.sample_rate_hz,
             format="MP3")
    odd.write_bytes(_id3v2_tag() + (tmp_path / "real.mp3").read_bytes())
    audio = load_audio(odd)
    assert audio.source_info["format"] == "MP3" and abs(audio.duration_s - 2.0) < 0.1


@pytest.mark.parametrize("name", ["clip.wav", "clip.mp3", "memo.bin"])
def test_an_unreadable_clip_is_an_audio_error(tmp_path, demo_audio, monkeypatch, name):
    # Before: the first-bytes check opened the file outside any handler: a PermissionError, which the
    # CLI blamed on the folder, and `voices add` stopped at that clip instead of listing it.
    import voxmith.audio.io as io_module

    path = tmp_path / name
    sf.write(path, demo_audio.samples[:8000], demo_audio.sample_rate_hz, format="WAV")
    if os.geteuid() == 0:  # root reads any file whatever its mode: refuse the open instead
        def refuse(file, *args, **kwargs):
            raise PermissionError(13, "Permission denied", str(file))

        monkeypatch.setattr(io_module, "open", refuse, raising=False)
    else:
        path.chmod(0)
    try:
        with pytest.raises(AudioError, match="Permission denied"):
            load_audio(path)
    finally:
        path.chmod(0o644)


def test_undecodable_audio_gets_advice_that_would_help(tmp_path, demo_audio, monkeypatch):
    # Before: an MP3 (read by FFmpeg's libraries only) and convert's streamed reader (the same) advised
    # "install ffmpeg (voxmith then uses it)", which changes nothing there; and a recording that broke
    # part-way was told apart from one that fails at once no more.
    from voxmith.audio.stream import read_blocks

    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # a PATH where no ffmpeg exists
    data = bytearray(_mp3(tmp_path / "real.mp3", demo_audio).read_bytes())
    noise = tmp_path / "noise.mp3"
    noise.write_bytes(np.random.default_rng(5).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    broken = tmp_path / "broken-in-the-middle.mp3"
    data[len(data) // 2:len(data) // 2 + 4000] = bytes(4000)
    broken.write_bytes(bytes(data))
    for read in (load_audio, lambda path: list(read_blocks(path, 16000))):
        with pytest.raises(AudioError) as caught:
            read(noise)
        assert "could not be decoded" in str(caught.value) and "install ffmpeg" not in str(caught.value)
        assert str(caught.value).endswith("if it plays elsewhere, convert it to WAV or FLAC.")
    blocks = read_blocks(broken, 16000, block_s=0.5)
    assert next(blocks).size  # the first seconds decode
    with pytest.raises(AudioError, match="decoding failed part-way") as caught:
        list(blocks)
    assert "install ffmpeg" not in str(caught.value)
    # where ffmpeg would be tried (a WAV libsndfile refuses), installing it is still the advice
    bad_wav = tmp_path / "bad.wav"
    bad_wav.write_bytes(b"RIFF" + bytes(200))
    with pytest.raises(AudioError, match=r"install ffmpeg \(voxmith then uses it\)"):
        load_audio(bad_wav)


def test_a_wav_whose_header_was_never_finished_is_read_to_its_end(tmp_path):
    # A recorder stopped before it wrote the data size leaves it 0. Before: "it contains no audio",
    # with 2 s of speech in the file (libsndfile believes the header; FFmpeg reads on).
    import struct

    path = tmp_path / "crashed-take.wav"
    tone = (0.1 * np.sin(np.arange(2 * 16000) / 5)).astype(np.float32)
    sf.write(path, tone, 16000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    data = raw.index(b"data")
    raw[data + 4:data + 8] = struct.pack("<I", 0)
    raw[4:8] = struct.pack("<I", 0)
    path.write_bytes(bytes(raw))
    assert sf.info(str(path)).frames == 0
    audio = load_audio(path)
    assert audio.sample_rate_hz == 16000
    assert audio.samples.size == tone.size
    assert np.abs(audio.samples - tone).max() < 1e-3
