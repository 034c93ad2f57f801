"""The gpt-sovits engine's glue at tiny size: reference choice + Whisper transcript, then text ->
phones -> GPT codes -> SoVITS audio, with random-weight models (architecture only: the audio is noise).
The models' maths is checked against the official code in their own tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from voxmith.audio import load_audio
from voxmith.engines import engine_class
from voxmith.engines.gpt_sovits.engine import GptSovitsEngine, GptSovitsModels, GptSovitsSettings
from voxmith.errors import VoxmithError


def tiny_models(seed: int = 0) -> GptSovitsModels:
    from transformers import HubertConfig, HubertModel

    from voxmith.engines.gpt_sovits.hubert import HubertFeatures
    from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig
    from voxmith.engines.gpt_sovits.t2s import T2SConfig, Text2SemanticModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        t2s = Text2SemanticModel(T2SConfig(hidden_dim=32, heads=2, layers=1, phoneme_vocab_size=732)).eval()
        sovits = SoVITS(SoVITSConfig(version="v2", filter_channels=32,
                                     n_heads=2, n_layers=1, upsample_initial_channel=32)).eval()
        hubert = HubertFeatures(HubertModel(HubertConfig(hidden_size=768, num_hidden_layers=1, num_attention_heads=12,
                                                         intermediate_size=64, conv_dim=(32,) * 7)))
    return GptSovitsModels("v2", t2s, sovits, hubert, early_stop_num=40)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine():
    return GptSovitsEngine.with_models(tiny_models())


@pytest.fixture(scope="module")
def conditioning(engine, demo_files):
    """Real conditioning from the demo voice's clips, transcribed by the bundled Whisper model."""
    return engine.prepare_conditioning([load_audio(path) for path in demo_files])


def test_registered_with_its_languages_and_files():
    cls = engine_class("gpt-sovits")
    assert cls is GptSovitsEngine and cls.sample_rate_hz == 32000
    assert cls.languages[0] == "en" and set(cls.languages) <= {"en", "ja", "zh", "yue"}  # with voxmith[ja], [zh], [yue]
    assert "v2ProPlus" in cls.model_versions


def test_reference_is_a_3_to_10_s_stretch_with_its_transcript(engine, conditioning, demo_files):
    reference = conditioning["reference_16k"]
    assert 3.0 <= reference.shape[0] / 16000 <= 10.0
    assert abs(conditioning["reference_32k"].shape[0] / 32000 - reference.shape[0] / 16000) < 0.01
    text = str(conditioning["reference_text"])
    assert len(text.split()) >= 4 and str(conditioning["reference_language"]) == "en"
    notes = engine.conditioning_notes(conditioning)
    assert notes["reference"]["text"] == text
    assert notes["reference"]["clip"] in {p.name for p in demo_files}
    assert len(notes["aux_references"]) == len(conditioning["aux_32k_lengths"]) <= len(demo_files) - 1


def test_takes_are_reproducible_per_seed(engine, conditioning):
    settings = GptSovitsSettings(aux_references=1)
    first = engine.synthesize("Hello there, my friend.", conditioning, settings, seed=5, candidates=2)
    again = engine.synthesize("Hello there, my friend.", conditioning, settings, seed=5, candidates=1)
    assert [c.seed for c in first] == [5, 6] and again[0].seed == 5
    np.testing.assert_array_equal(first[0].samples, again[0].samples)
    assert not np.array_equal(first[0].samples, first[1].samples)
    for take in first:
        assert take.sample_rate_hz == 32000 and take.samples.dtype == np.float32
        assert np.isfinite(take.samples).all() and np.abs(take.samples).max() <= 1.0
        assert take.details["pieces"] == ["Hello there,", " my friend."]  # cut5 cuts at the comma
        assert take.details["references"] == 2 and not take.details["reference_free"]
        # each piece ends with the official 0.3 s of silence
        assert not take.samples[-int(0.3 * 32000):].any()


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_batched_takes_are_each_what_a_run_of_that_take_alone_makes(engine, conditioning, precision):
    from voxmith.engines.precision import int8_supported

    if precision == "int8" and not int8_supported():
        pytest.skip("no fbgemm int8 kernels in this torch build")
    settings = GptSovitsSettings(aux_references=0, t2s_precision=precision)
    text = "Hello there, my friend. How are you?"  # three pieces: each take's generator runs through all
    batch = engine.synthesize(text, conditioning, settings, seed=11, candidates=3)
    assert [c.seed for c in batch] == [11, 12, 13]
    for take in batch:
        alone = engine.synthesize(text, conditioning, settings, seed=take.seed, candidates=1)[0]
        np.testing.assert_array_equal(take.samples, alone.samples)
        assert take.details["codes"] == alone.details["codes"] and take.details["t2s_precision"] == precision


def test_precision_auto_is_resolved_and_the_converted_gpt_made_once(engine):
    import threading

    from voxmith.engines.gpt_sovits.t2s_precision import resolve_t2s_precision

    expected = resolve_t2s_precision("auto", "cpu")[0]
    assert engine.resolved_settings(GptSovitsSettings()).t2s_precision == expected
    assert engine.resolved_settings(GptSovitsSettings(t2s_precision="bfloat16")).t2s_precision == "bfloat16"
    models = engine.models("v2")
    assert engine.t2s_for(models, "float32") is models.t2s
    views = []
    threads = [threading.Thread(target=lambda: views.append(engine.t2s_for(models, "bfloat16"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(v) for v in views}) == 1 and views[0] is not models.t2s
    assert engine.t2s_for(models, "bfloat16") is views[0]
    with pytest.raises(VoxmithError, match="t2s_precision"):
        GptSovitsSettings.from_dict({"t2s_precision": "fp8"})


def test_reference_text_can_be_corrected_and_other_languages_go_reference_free(engine, conditioning):
    fixed = engine.synthesize("Good morning.", conditioning, GptSovitsSettings(reference_text="Printing, in the only sense"),
                              seed=1)[0]
    assert fixed.details["reference_text"] == "Printing, in the only sense."
    german = {**conditioning, "reference_language": np.asarray("de")}
    free = engine.synthesize("Good morning.", german, GptSovitsSettings(), seed=1)[0]
    assert free.details["reference_free"]


class FakeSpeakerVerifier:
    """Stands in for ERes2NetV2 (tested against the official code on its own): a 20480-d vector per clip."""

    def __init__(self):
        self.calls = 0

    def embed(self, wav_16k):
        self.calls += 1
        return torch.full((1, 20480), float(wav_16k.float().std()))


def test_v2proplus_adds_a_speaker_embedding_per_reference(conditioning):
    from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig

    base = tiny_models(1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        sovits = SoVITS(SoVITSConfig(version="v2ProPlus", p_dropout=0.0, gin_channels=1024, filter_channels=32,
                                     n_heads=2, n_layers=1, upsample_initial_channel=32,
                                     upsample_kernel_sizes=(20, 16, 8, 2, 2))).eval()
    verifier = FakeSpeakerVerifier()
    engine = GptSovitsEngine.with_models(GptSovitsModels("v2ProPlus", base.t2s, sovits, base.hubert, 40, verifier))
    take = engine.synthesize("Hello there.", conditioning, GptSovitsSettings(model_version="v2ProPlus",
                                                                            aux_references=1), seed=3)[0]
    assert take.details["version"] == "v2ProPlus" and take.details["references"] == 2
    assert verifier.calls == 2 and np.isfinite(take.samples).all()


def test_bad_settings_and_languages_are_refused(engine, conditioning):
    for values, message in (({"top_k": 0}, "top_k"), ({"text_split": "cut9"}, "text_split"),
                            ({"model_version": "v9"}, "model_version"), ({"speed": 0}, "speed")):
        with pytest.raises(VoxmithError, match=message):
            GptSovitsSettings.from_dict(values)
    with pytest.raises(VoxmithError, match="Korean"):
        engine.synthesize("\uc548\ub155\ud558\uc138\uc694.", conditioning, GptSovitsSettings(), seed=0)
    with pytest.raises(VoxmithError, match="holds only v2"):
        engine.synthesize("Hello.", conditioning, GptSovitsSettings(model_version="v2ProPlus"), seed=0)


def test_without_weights_the_error_names_the_download_command(conditioning, demo_files, tmp_path, monkeypatch):
    demo_file = demo_files[0]
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("VOXMITH_GPT_SOVITS_MODELS", "GPT_SOVITS_HOME", "HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    engine = GptSovitsEngine(models_dir=tmp_path / "models")
    with pytest.raises(VoxmithError, match="voxmith models download gpt-sovits`"):
        engine.synthesize("Hello there.", conditioning, GptSovitsSettings(), seed=0)
    with pytest.raises(VoxmithError, match="voxmith models download gpt-sovits`"):  # before any Whisper pass
        engine.prepare_conditioning([load_audio(demo_file)])
    with pytest.raises(VoxmithError, match="--version v2ProPlus"):
        engine.models("v2ProPlus")


class TinyGptSovits(GptSovitsEngine):
    """The engine with tiny random-weight models, registered under its own name for a CLI test."""

    name = "gpt-sovits-tiny"

    def __init__(self, device: str = "cpu", models_dir=None):
        super().__init__(device, models_dir)
        self._models["v2"] = tiny_models()
        self._injected = True


def test_speak_and_reproduce_through_the_cli(run, demo_files):
    import soundfile as sf

    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine

    register_engine(TinyGptSovits.name, TinyGptSovits)
    try:
        assert run("voices", "add", "alice", *map(str, demo_files)).exit_code == 0
        spoken = run("speak", "-e", TinyGptSovits.name, "-v", "alice", "-n", "2", "--seed", "4", "--no-rank",
                     "--set", "aux_references=1", "Hello there, my friend.")
        assert spoken.exit_code == 0, spoken.output
        wav = spoken.output.strip().splitlines()[-1]
        sidecar = json.loads(open(wav.replace(".wav", ".json")).read())
        assert sidecar["settings"]["aux_references"] == 1 and len(sidecar["sentences"][0]["takes"]) >= 2
        # the precision that ran, not "auto": reproducing elsewhere runs the same arithmetic
        assert sidecar["settings"]["t2s_precision"] in ("int8", "float32")
        again = run("reproduce", wav.replace(".wav", ".json"))
        assert again.exit_code == 0, again.output
        first, _ = sf.read(wav)
        second, _ = sf.read(again.output.strip().splitlines()[-1])
        np.testing.assert_array_equal(first, second)
    finally:
        unregister_engine(TinyGptSovits.name)
