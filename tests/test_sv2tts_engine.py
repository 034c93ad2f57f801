"""The sv2tts engine's glue with tiny random-weight models (no checkpoints): conditioning from real
clips, synthesis with both vocoders, seeds, takes, threads; the message without weights; the
registry; and the official encoder weights that the resemblyzer package ships."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from voxmith.errors import VoxmithError


@pytest.fixture(scope="module")
def engine():
    from voxmith.engines.sv2tts.bundle import SV2TTSModels
    from voxmith.engines.sv2tts.engine import SV2TTSEngine

    return SV2TTSEngine.with_models(SV2TTSModels.tiny(seed=5))


@pytest.fixture(scope="module")
def conditioning(engine):
    from voxmith.audio import load_audio
    from voxmith.studio import demo_voice_files

    clips = [load_audio(p) for p in demo_voice_files()]
    events = []
    cond = engine.prepare_conditioning(clips, progress=events.append)
    assert events and events[-1].done == events[-1].total == len(clips)
    return cond


SMALL = {"max_seconds": 1.5, "target_samples": 200, "overlap_samples": 20}


def test_conditioning_embeds_every_clip(conditioning):
    assert conditioning["clip_embeddings"].shape == (2, 12)
    assert conditioning["embedding"].shape == (12,)
    assert abs(float(np.linalg.norm(conditioning["embedding"])) - 1) < 1e-5
    mean = conditioning["clip_embeddings"].mean(axis=0)
    assert np.allclose(conditioning["embedding"], mean / np.linalg.norm(mean), atol=1e-6)


@pytest.mark.parametrize("vocoder", ["wavernn", "griffinlim"])
def test_synthesis_is_reproducible_per_seed(engine, conditioning, vocoder):
    settings = engine.settings_class.from_dict({**SMALL, "vocoder": vocoder})
    first = engine.synthesize("Hello there, Dr. Smith.", conditioning, settings, seed=7, candidates=2)
    assert [c.seed for c in first] == [7, 8]
    for take in first:
        assert take.sample_rate_hz == 16000 and take.samples.dtype == np.float32 and take.samples.ndim == 1
        assert len(take.samples) > 0 and np.isfinite(take.samples).all() and np.abs(take.samples).max() <= 1.0
        assert take.details["vocoder"] == vocoder and take.details["frames"] >= 2
    again = engine.synthesize("Hello there, Dr. Smith.", conditioning, settings, seed=8, candidates=1)
    assert np.array_equal(again[0].samples, first[1].samples)
    assert not (len(first[0].samples) == len(first[1].samples) and np.array_equal(first[0].samples, first[1].samples))


def test_concurrent_requests_get_what_they_would_alone(engine, conditioning):
    """No global RNG: two threads with different seeds and vocoders match their sequential runs."""
    jobs = [("One sentence here.", 3, "wavernn"), ("Another one, longer still.", 4, "griffinlim")]
    alone = [engine.synthesize(t, conditioning, engine.settings_class.from_dict({**SMALL, "vocoder": v}), seed=s)[0]
             for t, s, v in jobs]
    results = [None, None]

    def run(i):
        t, s, v = jobs[i]
        results[i] = engine.synthesize(t, conditioning, engine.settings_class.from_dict({**SMALL, "vocoder": v}),
                                       seed=s)[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    torch.manual_seed(1234)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, results):
        assert np.array_equal(a.samples, b.samples)


def test_a_fold_longer_than_the_signal_is_padded(engine, conditioning):
    settings = engine.settings_class.from_dict({"max_seconds": 1.0, "target_samples": 1000, "overlap_samples": 100})
    take = engine.synthesize("Hi.", conditioning, settings, seed=2)[0]  # at most 80 tiny frames: 480 samples
    assert len(take.samples) > 0 and np.isfinite(take.samples).all()


def test_settings_are_checked(engine):
    with pytest.raises(VoxmithError, match="vocoder"):
        engine.settings_class.from_dict({"vocoder": "melgan"})
    with pytest.raises(VoxmithError, match="overlap_samples"):
        engine.settings_class.from_dict({"target_samples": "400", "overlap_samples": "800"})
    assert engine.settings_class.from_dict({"batched": "false"}).batched is False


def test_text_without_letters_is_refused(engine, conditioning):
    with pytest.raises(VoxmithError, match="English letters"):
        engine.synthesize("#@&* {HH AH}", conditioning, None, seed=1)


def test_without_weights_the_message_names_the_download(tmp_path, monkeypatch):
    from voxmith.audio import load_audio
    from voxmith.engines import create_engine
    from voxmith.studio import demo_voice_files

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for var in ("VOXMITH_SV2TTS_MODELS", "HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    engine = create_engine("sv2tts", "cpu", models_dir=tmp_path / "models")
    with pytest.raises(VoxmithError) as err:
        engine.prepare_conditioning([load_audio(demo_voice_files()[0])])
    assert "voxmith models download sv2tts" in str(err.value)
    assert "synthesizer.pt, vocoder.pt" in str(err.value)  # encoder.pt: the resemblyzer package's copy


def test_registry_lists_sv2tts():
    from voxmith.engines import available_engines, engine_class

    assert "sv2tts" in available_engines()
    cls = engine_class("sv2tts")
    assert cls.languages == ("en",) and cls.sample_rate_hz == 16000


def test_speak_and_reproduce_through_the_studio(studio):
    """The engine behind the studio (tiny models under another name): the conditioning is computed
    once and cached with the voice, a two-sentence result is written with its sidecar, and
    `reproduce` makes the same samples again."""
    from voxmith.engines.registry import register_engine, unregister_engine
    from voxmith.engines.sv2tts.bundle import SV2TTSModels
    from voxmith.engines.sv2tts.engine import SV2TTSEngine
    from voxmith.studio.speech import SpeakRequest

    class TinySV2TTS(SV2TTSEngine):
        name = "sv2tts-tiny"

        def __init__(self, device="cpu", models_dir=None):
            super().__init__(device, models_dir)
            self._models = SV2TTSModels.tiny(seed=5)

    calls = []
    original = TinySV2TTS.prepare_conditioning

    def counting(self, clips, progress=None):
        calls.append(len(clips))
        return original(self, clips, progress)

    TinySV2TTS.prepare_conditioning = counting
    register_engine("sv2tts-tiny", TinySV2TTS)
    try:
        studio.import_demo_voice("demo")
        request = SpeakRequest("Hello there. It is 5 pm.", voice="demo", engine="sv2tts-tiny", seed=3, rank=False,
                               settings=dict(SMALL))
        first = studio.speak(request)
        second = studio.speak(SpeakRequest("Hello there. It is 5 pm.", voice="demo", engine="sv2tts-tiny", seed=3,
                                           rank=False, settings=dict(SMALL)))
        assert calls == [2]  # the second request used the cached embedding
        assert first.sample_rate_hz == 16000 and first.path.is_file() and first.sidecar_path.is_file()
        assert first.sidecar["engine"]["name"] == "sv2tts-tiny" and len(first.sidecar["sentences"]) == 2
        assert np.array_equal(first.samples, second.samples)
        again = studio.reproduce(first.sidecar_path, output=first.path.with_name("again.wav"))
        assert np.array_equal(again.samples, first.samples)
    finally:
        unregister_engine("sv2tts-tiny")


def test_silent_clips_are_left_out_of_the_embedding(engine, conditioning):
    from voxmith.audio import Audio, load_audio
    from voxmith.studio import demo_voice_files

    silent = Audio(np.zeros(16000 * 3, dtype=np.float32), 16000)
    clips = [load_audio(p) for p in demo_voice_files()]
    with_silence = engine.prepare_conditioning([silent, *clips])
    assert np.allclose(with_silence["embedding"], conditioning["embedding"], atol=1e-6)
    with pytest.raises(VoxmithError, match="silent"):
        engine.prepare_conditioning([silent])
