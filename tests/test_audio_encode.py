"""In-memory encoding (voxmith.audio.encode): every format decodes back to the same audio length,
whole or streamed in chunks, and a stream's pieces form one valid file."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from voxmith.audio.encode import FORMATS, StreamEncoder, audio_format, encode_audio, wav_header
from voxmith.errors import AudioError


def decoded_duration_s(data: bytes, fmt: str, pcm_rate_hz: int) -> float:
    if fmt == "pcm":
        return len(data) / 2 / pcm_rate_hz
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(audio=0))
    return sum(f.samples for f in frames) / frames[0].sample_rate


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_whole_and_streamed_decode_to_the_input_length(demo_audio, fmt):
    samples, rate = demo_audio.samples, demo_audio.sample_rate_hz
    whole = encode_audio(samples, rate, fmt)
    encoder = StreamEncoder(fmt, rate)
    pieces = [encoder.encode(samples[i:i + 7000]) for i in range(0, samples.size, 7000)] + [encoder.finish()]
    streamed = b"".join(pieces)
    for data in (whole, streamed):
        # Lossy codecs add at most a frame or two of priming and padding.
        assert decoded_duration_s(data, fmt, rate) == pytest.approx(demo_audio.duration_s, abs=0.1)
    # Bytes flow before the end: a client can start playing after the first chunk.
    assert sum(len(p) for p in pieces[:3]) > 0


def test_wav_and_pcm_are_exact_16_bit(demo_audio):
    samples, rate = demo_audio.samples, demo_audio.sample_rate_hz
    decoded, decoded_rate = sf.read(io.BytesIO(encode_audio(samples, rate, "wav")), dtype="int16")
    assert decoded_rate == rate
    pcm = np.frombuffer(encode_audio(samples, rate, "pcm"), "<i2")
    assert np.array_equal(decoded, pcm)
    np.testing.assert_allclose(pcm / 32767.0, samples, atol=1 / 32767)


def test_streamed_wav_header_marks_unknown_length():
    encoder = StreamEncoder("wav", 22050)
    first = encoder.encode(np.zeros(100, np.float32))
    assert first[:4] == b"RIFF" and struct.unpack("<I", first[40:44])[0] == 0xFFFFFFFF
    assert len(first) == 44 + 200
    assert wav_header(22050, 100)[40:44] == struct.pack("<I", 200)


def test_clipping_not_wrapping():
    pcm = np.frombuffer(encode_audio(np.array([1.7, -3.0, 0.5], np.float32), 16000, "pcm"), "<i2")
    assert pcm.tolist() == [32767, -32767, 16384]


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(AudioError, match="mp3, opus, aac, flac, wav, pcm"):
        audio_format("wma")


def test_finished_stream_refuses_more():
    encoder = StreamEncoder("mp3", 22050)
    encoder.encode(np.zeros(2000, np.float32))
    encoder.finish()
    assert encoder.finish() == b""
    with pytest.raises(AudioError, match="finished"):
        encoder.encode(np.zeros(10, np.float32))


def test_web_ui_download_as_encodes_a_copy_of_the_same_length(tmp_path, monkeypatch):
    from voxmith.audio import load_audio, save_audio
    from voxmith.webui.tab_generate import download_as

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    (tmp_path / "gradio").mkdir()
    rate = 22050
    wav = save_audio(tmp_path / "result.wav", 0.3 * np.sin(np.arange(rate) * 2 * np.pi * 220 / rate), rate)
    assert download_as(str(wav), "wav") == str(wav)
    assert download_as(None, "mp3") is None
    for fmt in ("mp3", "flac", "opus"):
        copy = Path(download_as(str(wav), fmt))
        assert copy.suffix == f".{fmt}" and copy.is_relative_to(tmp_path / "gradio")
        assert abs(load_audio(copy).duration_s - 1.0) < 0.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gradio", "result.wav"]  # workspace untouched
