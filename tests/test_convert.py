"""`voxmith convert`: a recording of someone else converted into a voice (piper-vc), in chunks cut
at pauses; and the streaming audio helpers it stands on (voxmith.audio.stream)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from voxmith.audio import load_audio
from voxmith.audio.stream import StreamWriter, chunks_at_pauses, read_blocks
from voxmith.cli.main import cli
from voxmith.errors import VoxmithError
from voxmith.studio import Studio
from voxmith.studio.conversion import ConvertRequest


def test_chunks_are_cut_in_pauses_and_add_up(tmp_path):
    rate = 1000
    rng = np.random.default_rng(0)
    signal = (0.3 * rng.standard_normal(60 * rate)).astype(np.float32)
    pauses = [11_000, 27_000, 40_500]  # 200 ms gaps of silence
    for start in pauses:
        signal[start:start + 200] = 0.0
    blocks = [signal[i:i + 700] for i in range(0, signal.size, 700)]
    chunks = list(chunks_at_pauses(blocks, rate, min_s=8.0, max_s=20.0))
    assert np.array_equal(np.concatenate(chunks), signal)
    cuts = np.cumsum([c.size for c in chunks])[:-1]
    assert all(any(p <= cut < p + 200 for p in pauses) for cut in cuts), cuts
    assert all(8 * rate <= c.size <= 20 * rate for c in chunks[:-1])


def test_read_blocks_downmixes_and_resamples_in_pieces(tmp_path):
    rate = 44100
    t = np.arange(int(5.0 * rate)) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 440 * t)], axis=1)
    path = tmp_path / "tone.wav"
    sf.write(path, stereo, rate)
    blocks = list(read_blocks(path, 22050, block_s=1.0))
    assert len(blocks) >= 4
    mono = np.concatenate(blocks)
    assert abs(mono.size - 5.0 * 22050) <= 64
    spectrum = np.abs(np.fft.rfft(mono))
    assert abs(np.argmax(spectrum) * 22050 / mono.size - 440) < 2
    assert abs(np.sqrt(np.mean(mono[2000:-2000] ** 2)) - 0.3 / np.sqrt(2)) < 0.01  # mean of the channels


def test_stream_writer_is_atomic(tmp_path):
    path = tmp_path / "out.wav"
    with pytest.raises(RuntimeError):
        with StreamWriter(path, 16000) as writer:
            writer.write(np.zeros(1600, np.float32))
            raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []
    with StreamWriter(path, 16000) as writer:
        for _ in range(3):
            writer.write(np.full(1600, 0.25, np.float32))
    assert sf.info(path).frames == 4800


def test_engines_that_cannot_convert_say_so(tmp_path, tone_engine, demo_files):
    studio = Studio(tmp_path / "ws", device="cpu")
    studio.import_demo_voice()
    with pytest.raises(VoxmithError, match="tone engine cannot convert recordings; engines that can: piper-vc"):
        studio.convert(ConvertRequest(demo_files[0], voice="demo", engine="tone"))
    with pytest.raises(VoxmithError, match="does not exist"):
        studio.convert(ConvertRequest(tmp_path / "missing.wav", voice="demo"))
    with pytest.raises(VoxmithError, match="--voice NAME or --ref"):
        studio.convert(ConvertRequest(demo_files[0]))
    result = CliRunner().invoke(cli, ["--home", str(studio.workspace.home), "convert", "-v", "demo",
                                      "--set", "f0_scale=9", str(demo_files[0])])
    assert result.exit_code == 1 and "f0_scale" in result.output  # refused before the voice is enrolled
    assert not list(studio.workspace.voices_dir.glob("demo/.cache/*/*.npz"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory, shared_voices):
    """tom's held-back clip converted into the demo voice (LJ Speech), in chunks of a few seconds."""
    home = tmp_path_factory.mktemp("convert") / "ws"
    studio = Studio(home, device="cpu")
    studio.import_demo_voice()
    source = shared_voices / "tom" / "3.wav"
    events = []
    result = studio.convert(ConvertRequest(source, voice="demo", output=home / "tom-as-demo.wav",
                                           chunk_min_s=2.0, chunk_max_s=4.0),  # several chunks from 6 s
                            progress=events.append)
    return studio, source, result, events


def test_conversion_sounds_like_the_voice_and_keeps_the_words(converted, shared_voices):
    from voxmith.asr import get_transcriber
    from voxmith.engines.piper_vc import world
    from voxmith.speaker import cosine_similarity, get_speaker_encoder, mean_embedding
    from voxmith.studio.voice_report import voice_embeddings
    from voxmith.text import word_error_rate

    studio, source, result, events = converted
    original = load_audio(source, sample_rate_hz=22050)
    output = load_audio(result.path)
    assert output.frames == original.frames  # timing kept sample for sample
    assert len([e for e in events if e.stage.startswith("converting")]) >= 3  # chunk by chunk

    encoder = get_speaker_encoder("cpu")
    _, target, _ = voice_embeddings(studio.voices.get("demo"))
    tom = mean_embedding([encoder.embed(load_audio(p, sample_rate_hz=22050).samples, 22050)
                          for p in sorted((shared_voices / "tom").iterdir()) if p.name != source.name])
    embedding = encoder.embed(output.samples, 22050)
    assert cosine_similarity(embedding, target) > cosine_similarity(embedding, tom)
    assert cosine_similarity(embedding, target) > cosine_similarity(encoder.embed(original.samples, 22050), target)

    transcriber = get_transcriber()
    said = transcriber.transcribe(original.samples, 22050).text
    heard = transcriber.transcribe(output.samples, 22050).text
    assert word_error_rate(said, heard).wer <= 0.2, (said, heard)

    # the pitch moves into the voice's range: closer to the demo voice's median than to tom's
    f0_in, f0_out = (world.analyse(x).f0 for x in (original.samples, output.samples))
    details = result.sidecar["conversion"]
    shift = np.log(np.median(f0_out[f0_out > 0]))
    assert abs(shift - np.log(details["target_f0_hz"])) < abs(shift - np.log(np.median(f0_in[f0_in > 0])))


def test_conversion_sidecar_and_reproduce(converted, tmp_path):
    studio, source, result, _ = converted
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["kind"] == "convert" and sidecar["input"]["file"] == str(source.resolve())
    assert sidecar["voice"]["name"] == "demo" and sidecar["engine"]["name"] == "piper-vc"
    assert {"warp", "warp_search", "source_f0_hz"} <= set(sidecar["conversion"])
    assert sidecar["chunking"]["max_s"] == 4.0
    out = tmp_path / "again.wav"
    ran = CliRunner().invoke(cli, ["--home", str(studio.workspace.home), "-q", "reproduce", str(result.sidecar_path),
                                   "-o", str(out)])
    assert ran.exit_code == 0, ran.output
    assert out.name in ran.output
    first, again = sf.read(result.path, dtype="int16")[0], sf.read(out, dtype="int16")[0]
    assert np.array_equal(first, again)
    assert sidecar["schema"] == 2 and result.record.to_json() == sidecar
    # A sidecar as voxmith wrote it before it had a schema (1) reproduces the same audio.
    old = tmp_path / "v1.json"
    old.write_text(json.dumps({k: v for k, v in sidecar.items() if k != "schema"}))
    from_old = studio.reproduce(old, output=tmp_path / "from-v1.wav")
    assert np.array_equal(first, sf.read(from_old.path, dtype="int16")[0])
