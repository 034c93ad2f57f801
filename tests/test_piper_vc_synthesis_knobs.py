"""piper-vc synthesis knobs: Piper's sampling noise drawn from the seed through graph inputs
(base_voice.with_noise_inputs), the envelope filter smoothed in time (render.smooth_in_time) and the
share of the target's intonation range taken (conversion.convert f0_range).

Graph surgery and the maths run on scripted inputs; joe runs for real (the bundled model)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from voxmith.engines.piper_vc import conversion, render, world
from voxmith.engines.piper_vc.base_voice import get_base_voice, with_noise_inputs
from voxmith.engines.piper_vc.engine import PiperVCSettings
from voxmith.errors import VoxmithError


def random_like_model() -> onnx.ModelProto:
    """y = x + RandomNormalLike(x): what a graph drawing noise shaped like a tensor looks like."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["a", "b", "c"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c"])
    nodes = [helper.make_node("RandomNormalLike", ["x"], ["r"], dtype=TensorProto.FLOAT),
             helper.make_node("Add", ["x", "r"], ["y"])]
    graph = helper.make_graph(nodes, "noisy", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def run(model: onnx.ModelProto, **inputs) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, inputs)[0]


def test_random_op_becomes_a_slice_of_the_given_noise():
    model = random_like_model()
    assert with_noise_inputs(model) == ["noise_0"]
    onnx.checker.check_model(model)
    assert not any(n.op_type == "RandomNormalLike" for n in model.graph.node)
    x = np.zeros((1, 2, 5), np.float32)
    noise = np.arange(3 * 8, dtype=np.float32).reshape(1, 3, 8)
    out = run(model, x=x, noise_0=noise)
    np.testing.assert_array_equal(out, noise[:, :2, :5])  # cut to x's shape from the start


def test_noise_shorter_than_needed_is_repeated():
    model = random_like_model()
    with_noise_inputs(model)
    noise = np.asarray([[[1.0, 2.0, 3.0]]], np.float32)
    out = run(model, x=np.zeros((1, 2, 7), np.float32), noise_0=noise)
    np.testing.assert_array_equal(out, np.tile(noise, (1, 2, 3))[:, :, :7])


SENTENCE = "A letter from her brother arrived on Friday."


def test_joe_noise_follows_the_seed_alone():
    joe = get_base_voice()
    a = joe.speak(SENTENCE, seed=3, noise_scale=0.667, noise_w=0.8)
    again = joe.speak(SENTENCE, seed=3, noise_scale=0.667, noise_w=0.8)
    other = joe.speak(SENTENCE, seed=4, noise_scale=0.667, noise_w=0.8)
    np.testing.assert_array_equal(a.samples, again.samples)
    assert a.samples.size != other.samples.size or not np.array_equal(a.samples, other.samples)
    # Without noise the seed changes nothing (and the noisy take is not the flat one).
    flat = joe.speak(SENTENCE, seed=3)
    np.testing.assert_array_equal(flat.samples, joe.speak(SENTENCE, seed=4).samples)
    assert a.samples.size != flat.samples.size or not np.array_equal(a.samples, flat.samples)


def test_smoothing_keeps_constants_and_calms_frame_jitter():
    rng = np.random.default_rng(0)
    frames = np.ones((200, 3)) * np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(render.smooth_in_time(frames, 30.0), frames)
    jitter = frames + rng.normal(scale=0.3, size=frames.shape)
    smooth = render.smooth_in_time(jitter, 30.0)
    assert smooth.shape == jitter.shape
    assert np.abs(np.diff(smooth, axis=0)).mean() < 0.3 * np.abs(np.diff(jitter, axis=0)).mean()
    # Under two frames of smoothing: unchanged.
    assert render.smooth_in_time(jitter, world.FRAME_PERIOD_MS) is jitter


def stats(mean: float, std: float, d: int = 3) -> conversion.Stats:
    return conversion.Stats(np.full(d, mean), np.full(d, std))


def params_with_f0(src_std: float, tgt_std: float) -> conversion.ConversionParams:
    d = 3
    return conversion.ConversionParams(
        warp=0.0, src_voiced=stats(0, 1), src_unvoiced=stats(0, 1), tgt_voiced=stats(0, 1),
        tgt_unvoiced=stats(0, 1), src_lf0=conversion.Stats(np.asarray(np.log(150.0)), np.asarray(src_std)),
        tgt_lf0=conversion.Stats(np.asarray(np.log(220.0)), np.asarray(tgt_std)),
        ridge=np.zeros((d + 1, d)), ridge_mix=0.0, ot_voiced=np.eye(d), ot_unvoiced=np.eye(d), cov_mix=0.0)


@pytest.mark.parametrize("f0_range, expected_spread", [(1.0, 0.4), (0.0, 0.2), (0.5, 0.2 * np.sqrt(2.0))])
def test_f0_range_takes_that_share_of_the_spread_ratio(f0_range, expected_spread):
    rng = np.random.default_rng(1)
    lf0 = np.log(150.0) + rng.normal(scale=0.2, size=400)
    lf0 = (lf0 - lf0.mean()) / lf0.std() * 0.2 + np.log(150.0)  # exactly joe's statistics
    feats = world.WorldFeatures(f0=np.exp(lf0), mcep=np.zeros((400, 4)), ap=np.zeros((400, 5)))
    out = conversion.convert(feats, params_with_f0(0.2, 0.4), f0_range=f0_range)
    assert np.log(out.f0).std() == pytest.approx(expected_spread, rel=1e-6)
    assert np.log(out.f0).mean() == pytest.approx(np.log(220.0), rel=1e-9)  # the target's mean either way


@pytest.mark.parametrize("name, value", [("spectral_mix", -0.1), ("f0_range", 2.0), ("envelope_smoothing_ms", -1.0)])
def test_new_settings_are_range_checked(name, value):
    with pytest.raises(VoxmithError, match=name):
        PiperVCSettings(**{name: value}).validate()


def pulse_train(f0_hz: float, seconds: float = 0.5) -> tuple:
    """A decaying pulse per period (a crude voiced sound) and its per-frame F0."""
    sr = render.SR
    x = np.zeros(int(sr * seconds))
    period = int(sr / f0_hz)
    decay = np.exp(-np.arange(period) / (period / 6.0)) * np.sin(2 * np.pi * 900 * np.arange(period) / sr)
    for start in range(0, x.size - period, period):
        x[start:start + period] += decay
    frames = x.size // render.FRAME + 1
    return x.astype(np.float32), np.full(frames, float(f0_hz))


def test_psola_floor_keeps_the_gaps_of_a_lowered_pitch():
    x, f0 = pulse_train(150.0)
    ratio = np.full(f0.size, 0.7)
    filled = render.psola(x, f0, ratio, weight_floor=0.3)
    gapped = render.psola(x, f0, ratio, weight_floor=1.0)
    # Same pulses, but the floor of 1 does not amplify their tails into the widened gaps.
    assert np.sum(gapped ** 2) < np.sum(filled ** 2)
    assert np.max(np.abs(gapped)) == pytest.approx(np.max(np.abs(filled)), rel=0.3)
    # At ratio 1 the floor hardly matters: both give back the input.
    same = np.ones(f0.size)
    a, b = render.psola(x, f0, same, weight_floor=0.3), render.psola(x, f0, same, weight_floor=1.0)
    assert np.corrcoef(a, x)[0, 1] > 0.95 and np.corrcoef(b, x)[0, 1] > 0.95


def test_the_optimal_transport_map_of_a_side_with_one_frame_is_the_mean_shift(recwarn):
    rng = np.random.default_rng(0)
    many = rng.normal(size=(200, 6))
    for src, tgt in ((many[:1], many), (many, many[:1]), (many[:0], many)):
        assert np.array_equal(conversion.ot_map(src, tgt), np.eye(6))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]  # numpy's cov of one row warns
    assert np.all(np.isfinite(conversion.ot_map(many, many[::-1] * 2.0)))


def test_a_target_without_unvoiced_or_voiced_frames_converts_to_finite_features(recwarn):
    rng = np.random.default_rng(0)
    frames = 300

    def feats(f0):
        return world.WorldFeatures(f0=f0, mcep=rng.normal(size=(frames, 8)), ap=np.zeros((frames, 5)))

    joe = feats(np.where(rng.random(frames) < 0.6, 120.0, 0.0))
    for target in (feats(np.full(frames, 220.0)), feats(np.zeros(frames))):  # one held tone; a whisper
        params = conversion.fit([joe], [target], warp=0.0, cov_mix=0.5)
        out = conversion.convert(joe, params)
        assert np.all(np.isfinite(out.mcep)) and np.all(np.isfinite(out.f0))
    # The whisper keeps joe's pitch; its unvoiced frames still move to the target's statistics.
    assert np.allclose(out.f0[joe.voiced], joe.f0[joe.voiced])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_requests_draw_pipers_noise_and_the_guard_hears_the_conversion_without_it():
    from voxmith.engines.piper_vc.engine import GUARD_RENDERING, PiperVCEngine, PiperVCNaturalEngine

    engine = PiperVCEngine()
    defaults = engine.settings_class()
    assert defaults.noise_scale > 0 and defaults.noise_w > 0 and defaults.psola_floor == 1.0
    # The guard hears every other default; the noise is off and the pitch shift's floor is the one
    # its tolerance was set with.
    heard = engine._guard_settings()
    assert (heard.noise_scale, heard.noise_w, heard.psola_floor) == (0.0, 0.0, 0.3)
    assert dataclasses.replace(heard, **{k: getattr(defaults, k) for k in GUARD_RENDERING}) == defaults
    # Its floor (the base voice) and the takes it prepares ahead are noise-free too.
    joe = get_base_voice()
    asked = []
    original = joe.speak
    joe.speak = lambda *a, **k: asked.append(k) or original(*a, **k)
    try:
        engine._base_speaker(1.1, joe)(SENTENCE, 2)
        engine._check_takes(joe, 1.1, {}, sentences=(SENTENCE,))
    finally:
        del joe.speak
    assert len(asked) == 2 and all(k.get("noise_scale", 0.0) == k.get("noise_w", 0.0) == 0.0 for k in asked)
    # The floor hears the very take each check converts (sentence k at seed k's jittered pace), so
    # the two differ by the conversion alone.
    from voxmith.engines.piper_vc import guard

    takes: dict = {}
    sentences = guard.CHECK_SENTENCES[:2]
    engine._check_takes(joe, 1.1, takes, sentences=sentences)
    converted_takes = {key[2]: take[0].samples for key, take in takes.items()}
    for seed, text in enumerate(sentences):
        assert np.array_equal(engine._base_speaker(1.1, joe)(text, seed), converted_takes[seed])
    # piper-vc-natural keeps the renderer it was measured with (no noise, psola_floor 0.3).
    natural = PiperVCNaturalEngine.settings_class()
    assert (natural.noise_scale, natural.noise_w, natural.psola_floor) == (0.0, 0.0, 0.3)
