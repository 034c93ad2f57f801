"""A small compressed file can declare hours of audio: `load_audio` refuses one longer than its bound
from the header where its length is exact, else from its packets counted without decoding them, and
stops a file neither tells once decoding passes it. Voice clips have a tighter bound than dataset
recordings."""

from __future__ import annotations

import io
import shutil

import av
import numpy as np
import pytest
import soundfile as sf

from voxmith.audio import io as audio_io
from voxmith.audio import load_audio
from voxmith.audio.stream import read_blocks
from voxmith.errors import AudioError, VoxmithError
from voxmith.studio import voices as voices_module
from voxmith.studio.speech import load_reference_clips

RATE_HZ = 8000


def write_silence(path, seconds: int, rate_hz: int = RATE_HZ):
    """A silent FLAC written a minute at a time (silence compresses to almost nothing)."""
    with sf.SoundFile(path, "w", rate_hz, 1, format="FLAC", subtype="PCM_16") as file:
        minute = np.zeros(rate_hz * 60, np.int16)
        for _ in range(seconds // 60):
            file.write(minute)
        file.write(np.zeros(rate_hz * (seconds % 60), np.int16))
    return path


def forget_length(path):
    """Zero the FLAC's declared length (STREAMINFO's 36-bit sample count), as a FLAC written to a pipe
    has it: only decoding tells how long it is."""
    data = bytearray(path.read_bytes())
    offset = 4 + 4 + 10  # "fLaC", the block header, then block sizes and frame sizes
    packed = int.from_bytes(data[offset:offset + 8], "big") & ~((1 << 36) - 1)
    data[offset:offset + 8] = packed.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def encoded(seconds: float, bit_rate: int, loud: bool, fmt: str = "mp3", codec: str = "libmp3lame") -> bytes:
    """Mono 44.1 kHz noise (or silence) encoded by FFmpeg's libraries; an MP3 without a Xing/Info
    header (one written to a pipe), whose length FFmpeg can only estimate."""
    options = {"write_xing": "0", "id3v2_version": "0"} if fmt == "mp3" else {}
    rate = 44100
    samples = np.random.default_rng(0).standard_normal(int(seconds * rate)).astype(np.float32) * 0.3 * loud
    out = io.BytesIO()
    with av.open(out, "w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.bit_rate, stream.layout = bit_rate, "mono"
        for start in range(0, samples.size, 1152):
            frame = av.AudioFrame.from_ndarray(samples[None, start:start + 1152], format="fltp", layout="mono")
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


@pytest.fixture(scope="module", params=[("mp3", "libmp3lame"), ("adts", "aac")], ids=["mp3", "aac"])
def joined_episodes(request, tmp_path_factory):
    """22 s of audio that FFmpeg's header reading calls 3-17 min long: a 2 s quiet intro at a low
    bitrate joined with `cat` to 20 s at a high one (podcast episodes stitched together). FFmpeg
    estimates the length of an MP3 without a Xing header, or of raw ADTS AAC, from the first frames."""
    fmt, codec = request.param
    suffix = ".mp3" if fmt == "mp3" else ".aac"
    path = tmp_path_factory.mktemp("joined") / f"episodes{suffix}"
    path.write_bytes(encoded(2, 32000, False, fmt, codec) + encoded(20, 320000, True, fmt, codec))
    with av.open(str(path)) as container:
        assert container.duration / 1e6 > 180  # what the header reading estimates
    return path


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory):
    """31 minutes of silence, 45 kB: over the voice-clip bound, within the general one."""
    path = write_silence(tmp_path_factory.mktemp("long") / "interview.flac", 31 * 60)
    assert path.stat().st_size < 200_000
    return path


@pytest.fixture
def no_decoding(monkeypatch):
    """Any decoding is a failure: a refusal must come from the header alone."""
    def decoded(*args, **kwargs):
        raise AssertionError("the file was decoded")

    monkeypatch.setattr(sf, "read", decoded)
    monkeypatch.setattr(sf.SoundFile, "read", decoded)


def test_voice_clip_over_the_clip_bound_is_refused_from_its_header(studio, long_recording, no_decoding):
    with pytest.raises(VoxmithError) as refused:
        studio.voices.add("b", [long_recording])
    message = str(refused.value)
    assert "interview.flac" in message and "31 min long" in message
    assert f"{voices_module.MAX_CLIP_SECONDS / 60:g} min limit" in message
    assert "voxmith dataset prepare" in message
    assert not studio.voices.exists("b")


def test_reference_clip_over_the_clip_bound_is_refused(long_recording, no_decoding):
    with pytest.raises(VoxmithError, match="31 min long.*voxmith dataset prepare"):
        load_reference_clips([long_recording])


def test_dataset_recordings_keep_the_generous_default(long_recording):
    """A recording too long for a voice clip is still read whole for a dataset."""
    audio = load_audio(long_recording)
    assert audio.duration_s == pytest.approx(31 * 60)
    assert audio_io.MAX_AUDIO_SECONDS >= 2 * 3600  # hour-long recordings are legitimate


def test_default_bound_refuses_from_the_header(tmp_path, monkeypatch, no_decoding):
    monkeypatch.setattr(audio_io, "MAX_AUDIO_SECONDS", 60.0)
    path = write_silence(tmp_path / "bomb.flac", 125)
    with pytest.raises(AudioError) as refused:
        load_audio(path)
    message = str(refused.value)
    assert "bomb.flac" in message and "2 min 05 s long, over the 1 min limit" in message
    assert "split the recording into parts" in message


def test_bound_shrinks_for_high_rates_and_many_channels(tmp_path, no_decoding):
    """Seconds count up to 48 kHz stereo: 8 channels at 96 kHz get an eighth of the time."""
    path = tmp_path / "surround.flac"
    sf.write(path, np.zeros((96000 * 20, 8), np.int16), 96000, subtype="PCM_16")
    with pytest.raises(AudioError, match="20 s long, over the 15 s limit at 96000 Hz with 8 channels"):
        load_audio(path, max_seconds=120)


def test_length_unknown_until_decoded_stops_at_the_bound(tmp_path, monkeypatch):
    path = forget_length(write_silence(tmp_path / "piped.flac", 30))
    assert sf.info(str(path)).frames >= audio_io.UNKNOWN_FRAMES
    monkeypatch.setattr(audio_io, "NATIVE_BLOCK_FRAMES", RATE_HZ)
    frames_read = []
    read = sf.SoundFile.read

    def counted(self, frames=-1, *args, **kwargs):
        block = read(self, frames, *args, **kwargs)
        frames_read.append(len(block))
        return block

    monkeypatch.setattr(sf.SoundFile, "read", counted)
    with pytest.raises(AudioError, match="piped.flac': it is longer than the 10 s limit"):
        load_audio(path, max_seconds=10)
    assert sum(frames_read) <= 11 * RATE_HZ  # decoding stopped a block past the bound
    assert load_audio(path, max_seconds=40).duration_s == pytest.approx(30)  # within it, read whole


def no_pyav_decoding(*args, **kwargs):
    """Stands for PyAV's AudioResampler, which every decoding through PyAV here begins with."""
    raise AssertionError("the file was decoded")


def test_length_unknown_to_ffmpegs_libraries_is_counted_before_decoding(tmp_path, monkeypatch):
    """FFmpeg's libraries count the packets of a file whose header does not say how long it is, and
    refuse it before decoding; the ffmpeg program (where installed) is refused alike."""
    path = forget_length(write_silence(tmp_path / "piped.flac", 30))
    shutil.copy(path, tmp_path / "piped.webm")  # read by FFmpeg's decoders, not libsndfile
    with av.open(str(tmp_path / "piped.webm")) as container:
        assert audio_io.declared_seconds(container) is None
    monkeypatch.setattr(av, "AudioResampler", no_pyav_decoding)
    if shutil.which("ffmpeg"):
        with pytest.raises(AudioError, match="piped.webm': it is longer than the 10 s limit"):
            load_audio(tmp_path / "piped.webm", max_seconds=10)
    monkeypatch.setattr(audio_io.shutil, "which", lambda name: None)  # PyAV only
    with pytest.raises(AudioError, match="piped.webm': it is longer than the 10 s limit"):
        load_audio(tmp_path / "piped.webm", max_seconds=10)
    with pytest.raises(AudioError, match=r"piped.webm': it is longer than the 10 s limit\. Split the recording"):
        next(read_blocks(tmp_path / "piped.webm", RATE_HZ, max_seconds=10))  # a sentence of its own


def test_length_neither_declared_nor_counted_stops_at_the_bound_while_decoding(tmp_path, monkeypatch):
    """Where the packets cannot be counted either, FFmpeg's decoders (PyAV, the ffmpeg program where
    installed) stop past the bound."""
    path = forget_length(write_silence(tmp_path / "piped.flac", 30))
    shutil.copy(path, tmp_path / "piped.webm")
    monkeypatch.setattr(audio_io, "counted_seconds", lambda *args, **kwargs: None)
    if shutil.which("ffmpeg"):
        with pytest.raises(AudioError, match="piped.webm': it is longer than the 10 s limit"):
            load_audio(tmp_path / "piped.webm", max_seconds=10)
    monkeypatch.setattr(audio_io.shutil, "which", lambda name: None)  # PyAV only
    with pytest.raises(AudioError, match="piped.webm': it is longer than the 10 s limit"):
        load_audio(tmp_path / "piped.webm", max_seconds=10)
    assert load_audio(tmp_path / "piped.webm", max_seconds=40).duration_s == pytest.approx(30)


def test_an_estimated_length_over_the_bound_does_not_refuse_a_recording_within_it(joined_episodes):
    """Before: 22 s refused as "3 min 22 s long, over the 1 min limit" (the header's estimate)."""
    assert load_audio(joined_episodes, max_seconds=60).duration_s == pytest.approx(22, abs=0.2)
    assert audio_io.header_duration_s(joined_episodes) == pytest.approx(22, abs=0.2)
    with pytest.raises(AudioError, match="episodes.*': it is longer than the 15 s limit"):
        load_audio(joined_episodes, max_seconds=15)  # its real length is still bounded, and counted


def test_a_counted_length_over_the_bound_is_refused_before_decoding(joined_episodes, monkeypatch):
    monkeypatch.setattr(av, "AudioResampler", no_pyav_decoding)
    with pytest.raises(AudioError, match="episodes.*': it is longer than the 15 s limit"):
        load_audio(joined_episodes, max_seconds=15)
    with pytest.raises(AudioError, match="episodes.*': it is longer than the 15 s limit"):
        next(read_blocks(joined_episodes, RATE_HZ, max_seconds=15))


def test_libsndfiles_mp3_length_is_not_trusted(tmp_path):
    """libsndfile reads an MP3's length from libmpg123, which estimates it as FFmpeg does: an MP3 it
    decodes (one FFmpeg's libraries could not) is bounded while decoding, not refused from that."""
    path = tmp_path / "episodes.mp3"
    path.write_bytes(encoded(2, 32000, False) + encoded(20, 320000, True))
    info = sf.info(str(path))
    assert info.format in audio_io.MPEG_FORMATS and info.duration > 180
    samples = audio_io._read_native(path, info, audio_io.LengthLimit(60))
    assert len(samples) / info.samplerate == pytest.approx(22, abs=0.2)
    with pytest.raises(AudioError, match="episodes.mp3': it is longer than the 15 s limit"):
        audio_io._read_native(path, info, audio_io.LengthLimit(15))


def test_http_voice_upload_over_the_clip_bound_is_a_400_without_decoding(tmp_path, long_recording, no_decoding):
    """The HTTP API's voice upload (as the web UI's Voices tab) goes through the voice library's bound."""
    import httpx

    from tests.serve_engines import running_api
    from voxmith.serve import ServeConfig
    from voxmith.studio import Studio

    studio = Studio(tmp_path / "ws", device="cpu")
    with running_api(studio, ServeConfig(workers=1)) as url, open(long_recording, "rb") as clip:
        response = httpx.post(f"{url}/voxmith/voices/b", files={"files": ("interview.flac", clip)}, timeout=30)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert "interview.flac" in message and "31 min long" in message and "voxmith dataset prepare" in message
    assert not studio.voices.exists("b")


# --- convert: streamed, so bounded in time, not memory --------------------------------------------

@pytest.fixture(scope="module")
def three_hour_talk(tmp_path_factory):
    """3 h 05 min of silence, ~0.2 MB: over the default bound, which convert applies too."""
    path = write_silence(tmp_path_factory.mktemp("talk") / "talk.flac", 185 * 60)
    assert path.stat().st_size < 1_000_000
    return path


@pytest.fixture
def no_engine(monkeypatch):
    """Loading an engine is a failure: the refusal must come before any enrollment work."""
    from voxmith.studio import Studio

    def loaded(*args, **kwargs):
        raise AssertionError("an engine was loaded")

    monkeypatch.setattr(Studio, "engine", loaded)


def test_convert_refuses_a_recording_declared_over_the_bound_before_loading_the_engine(run, three_hour_talk,
                                                                                        demo_files, no_engine):
    # Before: the conversion began, and would have run for hours on 3 h of silence.
    result = run("convert", "--ref", str(demo_files[0]), str(three_hour_talk))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"Cannot read '{three_hour_talk}': it is 3 h 05 min long, over the 3 h 00 min limit." in result.output
    assert "convert the parts one by one" in result.output


def test_http_convert_of_a_recording_declared_over_the_bound_is_a_400_before_enrolling(tmp_path, three_hour_talk,
                                                                                      demo_files, no_engine):
    import httpx

    from tests.serve_engines import running_api
    from voxmith.serve import ServeConfig
    from voxmith.studio import Studio

    studio = Studio(tmp_path / "ws", device="cpu")
    studio.voices.add("demo", demo_files)
    with running_api(studio, ServeConfig(workers=1)) as url, open(three_hour_talk, "rb") as recording:
        response = httpx.post(f"{url}/voxmith/convert", data={"voice": "demo"},
                              files={"recording": ("long talk.flac", recording)}, timeout=60)
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("Cannot read 'long talk.flac': it is 3 h 05 min long, over the 3 h 00 min limit.")
    assert not list(studio.workspace.voices_dir.glob("demo/.cache/*/*.npz"))  # nothing was enrolled


def test_convert_reads_a_recording_of_estimated_length_within_the_bound(joined_episodes, monkeypatch):
    from voxmith.studio.conversion import ConvertRequest

    monkeypatch.setattr(audio_io, "MAX_AUDIO_SECONDS", 60.0)  # load_audio's bound, which convert shares
    ConvertRequest(joined_episodes, refs=[joined_episodes]).validate()
    assert sum(block.size for block in read_blocks(joined_episodes, RATE_HZ)) / RATE_HZ == pytest.approx(22, abs=0.2)


def test_convert_refuses_a_recording_of_undeclared_length_before_the_work(tmp_path, monkeypatch):
    """Before: hours of conversion, thrown away once the streamed audio passed the bound."""
    from voxmith.studio.conversion import ConvertRequest

    monkeypatch.setattr(audio_io, "MAX_AUDIO_SECONDS", 60.0)
    path = forget_length(write_silence(tmp_path / "piped.flac", 125))
    with pytest.raises(AudioError, match=r"piped.flac': it is longer than the 1 min limit\. Split it"):
        ConvertRequest(path, refs=[path]).validate()


def test_convert_of_a_recording_of_uncountable_length_stops_at_the_bound(tmp_path, monkeypatch):
    """Where neither the header nor the packets tell, the conversion stops (and writes nothing) once
    it passes the bound."""
    from types import SimpleNamespace

    from voxmith.studio.conversion import ConvertRequest, convert_recording

    monkeypatch.setattr(audio_io, "MAX_AUDIO_SECONDS", 60.0)  # load_audio's bound, which convert shares
    monkeypatch.setattr(audio_io, "counted_seconds", lambda *args, **kwargs: None)
    path = forget_length(write_silence(tmp_path / "piped.flac", 125))
    request = ConvertRequest(path, refs=[path])
    request.validate()  # nothing tells the length up front
    converted = []

    def convert(chunk):
        converted.append(chunk.size)
        return chunk

    echo = SimpleNamespace(name="echo", version="1", sample_rate_hz=RATE_HZ,
                           checked_convert_settings=lambda settings: SimpleNamespace(to_dict=dict),
                           converter=lambda *args: SimpleNamespace(convert=convert, details={}))
    output = tmp_path / "out.flac"
    with pytest.raises(AudioError, match=r"piped.flac': it is longer than the 1 min limit\. Split it"):
        convert_recording(echo, None, request, output, {}, "cpu")
    assert sum(converted) <= 61 * RATE_HZ  # it stopped at the bound, not at the end
    assert not output.exists()
