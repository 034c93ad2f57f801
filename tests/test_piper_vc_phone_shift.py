"""piper-vc's per-phone envelope deviation (phone_shift.py): labelling frames by Piper's phone
timings, the shrunk per-phone means, adding them at synthesis; and the engine storing and using
them. The maths runs on scripted inputs; the engine test enrolls the demo voice for real."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest

from voxmith.engines.piper_vc import phone_shift, world
from voxmith.engines.piper_vc.phone_shift import PAUSE, PhoneDeviations

FRAME = int(round(world.SAMPLE_RATE_HZ * world.FRAME_PERIOD_MS / 1000.0))  # samples per frame


def test_frames_take_the_token_under_their_centre_and_pause_outside_every_token():
    alignment = [("a", 0, 3 * FRAME), ("_", 3 * FRAME, 4 * FRAME), ("b", 5 * FRAME, 7 * FRAME)]
    labels = phone_shift.frame_phones(alignment, 9, world.SAMPLE_RATE_HZ, world.FRAME_PERIOD_MS)
    assert labels.tolist() == ["a", "a", "a", "_", PAUSE, "b", "b", PAUSE, PAUSE]


def test_a_trimmed_take_is_labelled_from_where_its_cut_began():
    alignment = [("a", 0, 3 * FRAME), ("b", 3 * FRAME, 6 * FRAME)]
    labels = phone_shift.frame_phones(alignment, 4, world.SAMPLE_RATE_HZ, world.FRAME_PERIOD_MS, offset=2 * FRAME)
    assert labels.tolist() == ["a", "b", "b", "b"]


def test_no_timings_no_labels():
    assert phone_shift.frame_phones(None, 5, world.SAMPLE_RATE_HZ, world.FRAME_PERIOD_MS) is None
    assert phone_shift.frame_phones([], 5, world.SAMPLE_RATE_HZ, world.FRAME_PERIOD_MS) is None


def test_each_phone_deviates_from_the_speech_mean_shrunk_by_its_frame_count():
    labels = np.array(["a"] * 30 + ["b"] * 10 + [PAUSE] * 5)
    diff = np.zeros((labels.size, 3))
    diff[:30] = [5.0, 1.0, 0.0]
    diff[30:40] = [5.0, -1.0, 2.0]
    diff[40:] = [0.0, 0.0, -4.0]
    fitted = phone_shift.fit([diff[:20], diff[20:]], [labels[:20], labels[20:]], shrink_frames=10.0)
    overall = diff[:40].mean(axis=0)  # speech frames only: [5, 0.5, 0.5]
    rows = dict(zip(fitted.tokens, fitted.deviation))
    np.testing.assert_allclose(rows["a"][1:], ((30 * diff[0] + 10 * overall) / 40 - overall)[1:])
    np.testing.assert_allclose(rows["b"][1:], ((10 * diff[30] + 10 * overall) / 20 - overall)[1:])
    np.testing.assert_allclose(rows[PAUSE][1:], (diff[40] - overall)[1:])
    assert np.all(fitted.deviation[:, 0] == 0.0)  # loudness stays the base voice's


def test_nothing_labelled_as_speech_fits_nothing():
    assert phone_shift.fit([], []) is None
    assert phone_shift.fit([np.ones((4, 3))], [np.array([PAUSE] * 4)]) is None


def test_a_phone_enrollment_never_heard_gets_no_deviation():
    deviations = PhoneDeviations(("a",), np.array([[0.0, 1.0, 2.0]]))
    np.testing.assert_array_equal(deviations.per_frame(np.array(["a", "z"])), [[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]])


def test_deviations_survive_an_npz_without_pickle():
    deviations = PhoneDeviations(("a", "ɪ", "ʃ", PAUSE), np.arange(12, dtype=np.float64).reshape(4, 3))
    buffer = io.BytesIO()
    np.savez(buffer, **deviations.to_conditioning())
    buffer.seek(0)
    with np.load(buffer, allow_pickle=False) as data:
        back = PhoneDeviations.from_conditioning({k: data[k] for k in data.files})
    assert back.tokens == deviations.tokens
    np.testing.assert_array_equal(back.deviation, deviations.deviation)
    assert PhoneDeviations.from_conditioning({}) is None


def features(frames: int, order: int = 4) -> world.WorldFeatures:
    return world.WorldFeatures(np.full(frames, 120.0), np.zeros((frames, order)), np.zeros((frames, 9)))


def test_shifted_adds_the_mixed_deviation_and_keeps_pitch_and_aperiodicity():
    frames = 200
    alignment = [("a", 0, frames * FRAME)]
    deviations = PhoneDeviations(("a",), np.array([[0.0, 0.5, -0.25, 1.0]]))
    source = features(frames)
    out = phone_shift.shifted(source, deviations, alignment, mix=2.0)
    middle = frames // 2  # away from the smoothing's edges (padded with their own values anyway)
    np.testing.assert_allclose(out.mcep[middle], [0.0, 1.0, -0.5, 2.0])
    assert out.f0 is source.f0 and out.ap is source.ap
    assert np.all(source.mcep == 0.0)  # the input is not changed in place


def test_shifted_glides_between_phones():
    frames = 200
    alignment = [("a", 0, 100 * FRAME), ("b", 100 * FRAME, frames * FRAME)]
    deviations = PhoneDeviations(("a", "b"), np.array([[0.0, 1.0], [0.0, -1.0]]))
    out = phone_shift.shifted(features(frames, order=2), deviations, alignment, mix=1.0).mcep[:, 1]
    assert out[5] == pytest.approx(1.0) and out[195] == pytest.approx(-1.0)
    assert -1.0 < out[100] < 1.0 and np.all(np.diff(out[70:130]) <= 1e-12)  # no step at the boundary


def test_without_timings_the_take_is_unchanged():
    source = features(10)
    assert phone_shift.shifted(source, PhoneDeviations(("a",), np.ones((1, 4))), None, mix=2.0) is source


@pytest.fixture(scope="module")
def demo_conditioning(demo_files):
    from voxmith.audio import load_audio
    from voxmith.engines.piper_vc import PiperVCEngine

    return PiperVCEngine(device="cpu").prepare_conditioning([load_audio(p) for p in demo_files])


def test_enrollment_stores_each_phone_of_the_base_voice_and_synthesis_adds_it(demo_conditioning):
    from voxmith.engines.piper_vc import PiperVCEngine, guard

    deviations = PhoneDeviations.from_conditioning(demo_conditioning)
    assert deviations is not None and len(deviations.tokens) > 20  # the clips' words cover most phones
    assert np.abs(deviations.deviation[:, 1:]).max() > 0.01 and np.all(deviations.deviation[:, 0] == 0.0)
    engine = PiperVCEngine(device="cpu")
    settings = engine.settings_class()
    without = {k: v for k, v in demo_conditioning.items() if k not in phone_shift.KEYS.values()}
    text = "The garden gate was painted green."
    with_them = engine.synthesize(text, demo_conditioning, settings, seed=3)[0]
    off = engine.synthesize(text, demo_conditioning, replace(settings, phone_mix=0.0), seed=3)[0]
    never = engine.synthesize(text, without, settings, seed=3)[0]
    share = float(demo_conditioning[guard.KEYS["phones"]])  # what the guard let through for this voice
    assert with_them.details["phone_mix"] == settings.phone_mix * share
    assert off.details["phone_mix"] == never.details["phone_mix"] == 0.0
    np.testing.assert_array_equal(off.samples, never.samples)  # phone_mix 0 is the conversion without them
    if share > 0 and float(demo_conditioning[guard.KEYS["statistics"]]) > 0:
        assert not np.array_equal(with_them.samples, off.samples)
    # Wherever the guard's share would put them, they change the take.
    full = {**demo_conditioning, guard.KEYS["phones"]: np.asarray(1.0), guard.KEYS["statistics"]: np.asarray(1.0)}
    assert not np.array_equal(engine.synthesize(text, full, settings, seed=3)[0].samples,
                              engine.synthesize(text, full, replace(settings, phone_mix=0.0), seed=3)[0].samples)


def test_naturalness_is_weighed_without_the_phone_deviations():
    from voxmith.engines.piper_vc import guard
    from voxmith.engines.piper_vc.engine import _without_phones

    heard = []
    speak = _without_phones(lambda text, seed, strengths: heard.append(strengths) or np.zeros(4, np.float32))
    speak("a b", 0, guard.Strengths(network=0.0, phones=1.0))
    speak("a b", 1, None)
    assert heard == [guard.Strengths(network=0.0, phones=0.0), None]
