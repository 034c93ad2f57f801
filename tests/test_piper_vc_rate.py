"""piper-vc's speaking rate (rate.py): the base voice's curve, its inversion, the known-answer check."""

from __future__ import annotations

import numpy as np
import pytest

from voxmith.engines.piper_vc import rate

RATE_HZ = 1000


def test_curve_is_inverted_piecewise_and_extended_beyond_its_ends():
    curve = rate.RateCurve(scales=(0.8, 1.0, 1.5), ratios=(0.9, 1.0, 1.3))
    assert curve.length_scale(1.0) == pytest.approx(1.0)
    assert curve.length_scale(0.95) == pytest.approx(0.9)
    assert curve.length_scale(1.15) == pytest.approx(1.25)
    assert curve.length_scale(1.45) == pytest.approx(1.75)  # slope of the last segment
    assert curve.length_scale(0.85) == pytest.approx(0.7)  # slope of the first
    flat = rate.RateCurve(scales=(1.0, 1.25, 1.5), ratios=(1.0, 1.0, 1.2))  # a flat step stays invertible
    assert np.isfinite(flat.length_scale(1.1)) and 1.25 <= flat.length_scale(1.1) <= 1.5


def test_rate_is_clipped_and_rounded_and_defaults_to_one():
    curve = rate.RateCurve(scales=(1.0, 2.0), ratios=(1.0, 1.5))  # scale = 1 + 2 (ratio - 1)
    assert rate.speaking_rate(1.06, curve, (0.8, 1.5), 0.05) == pytest.approx(1.1)  # 1.12 -> 1.1
    assert rate.speaking_rate(1.4, curve, (0.8, 1.5), 0.05) == pytest.approx(1.5)
    assert rate.speaking_rate(0.5, curve, (0.8, 1.5), 0.05) == pytest.approx(0.8)
    for nothing in (None, float("nan"), 0.0):
        assert rate.speaking_rate(nothing, curve) == 1.0
    assert rate.duration_ratio([110, 300, 90], [100, 200, 100]) == pytest.approx(1.1)  # median
    assert rate.duration_ratio([], []) is None


def scripted_voice(stretch):
    """say(text, scale): silence, then len(text) * stretch(scale) samples of tone, then silence;
    counts its calls."""
    calls = []

    def say(text: str, scale: float) -> np.ndarray:
        calls.append((text, scale))
        speech = 0.5 * np.sin(np.arange(int(round(len(text) * 10 * stretch(scale)))) * 0.3)
        return np.concatenate([np.zeros(400), speech, np.zeros(400)]).astype(np.float32)

    return say, calls


def test_curve_measures_trimmed_durations_and_is_measured_once_per_voice():
    say, calls = scripted_voice(lambda s: 1 + 0.7 * (s - 1))
    key = object()
    curve = rate.curve_for(key, lambda: rate.measure_curve(say, RATE_HZ))
    assert curve.scales == tuple(sorted(rate.CURVE_SCALES))
    # The silences are trimmed down to the 100 ms trim_silence keeps on each side.
    chars = sum(len(t) for t in rate.CURVE_SENTENCES)
    pads = 2 * 100 * len(rate.CURVE_SENTENCES)
    expected = lambda s: (chars * 10 * (1 + 0.7 * (s - 1)) + pads) / (chars * 10 + pads)  # noqa: E731
    assert curve.ratios == pytest.approx([expected(s) for s in curve.scales], abs=0.01)
    assert len(calls) == len(rate.CURVE_SCALES) * len(rate.CURVE_SENTENCES)
    assert rate.curve_for(key, lambda: rate.measure_curve(say, RATE_HZ)) is curve and len(calls) == len(rate.CURVE_SCALES) * 3
    other, other_calls = scripted_voice(lambda s: s)
    assert rate.curve_for(object(), lambda: rate.measure_curve(other, RATE_HZ)) != curve and other_calls
    with pytest.raises(ValueError):
        rate.measure_curve(say, RATE_HZ, scales=(0.8, 1.2))


def test_known_rate_is_recovered_from_the_real_base_voice():
    """Piper saying a sentence at length_scale 1.15 is estimated at 1.15 through its own curve,
    where the raw duration ratio (about 1.07) would make the clone speak too fast."""
    from voxmith.audio import trim_silence
    from voxmith.engines.piper_vc.base_voice import get_base_voice
    from voxmith.engines.piper_vc.enrollment import base_curve

    voice = get_base_voice()
    curve = base_curve()
    assert all(a < b for a, b in zip(curve.ratios, curve.ratios[1:]))
    text = "Every morning the baker opened his shop before the first tram went past."
    trimmed = {s: trim_silence(voice.speak(text, seed=0, length_scale=s).samples, voice.sample_rate_hz).size
               for s in (1.0, 1.15)}
    ratio = rate.duration_ratio([trimmed[1.15]], [trimmed[1.0]])
    assert ratio < 1.11
    assert rate.speaking_rate(ratio, curve) == pytest.approx(1.15, abs=0.051)


def test_kokoro_bases_are_never_sped_up_and_joe_may_be():
    curve = rate.RateCurve((0.8, 1.0, 1.2), (0.8, 1.0, 1.2))
    assert rate.rate_range_for("joe") == rate.RATE_RANGE
    assert rate.rate_range_for("kokoro:jf_alpha") == rate.KOKORO_RATE_RANGE
    fast_speaker = 0.8  # the target takes 0.8x the base voice's time
    assert rate.speaking_rate(fast_speaker, curve, rate.rate_range_for("joe")) == pytest.approx(rate.RATE_RANGE[0])
    assert rate.speaking_rate(fast_speaker, curve, rate.rate_range_for("kokoro:jm_kumo")) == pytest.approx(1.0)


def test_a_fine_tune_speaks_a_scaled_joe_voice_at_its_pace_through_joes_curve(monkeypatch):
    """A fine-tune speaks through joe: a voice enrolled with joe keeps its rate; one enrolled with
    another base voice (joe scaled, whose durations grow differently) gets its measured duration
    ratio turned into joe's length_scale through joe's own curve; without the ratio (enrolled before
    it was kept), joe's own pace. Scripted curve: no Piper."""
    import numpy as np

    from voxmith.engines.piper_vc import engine as piper_engine
    from voxmith.engines.piper_vc.rate import RATE_RANGE, RateCurve, speaking_rate

    joe_curve = RateCurve((0.8, 1.0, 1.4), (0.8, 1.0, 1.25))
    monkeypatch.setattr(piper_engine, "base_curve", lambda voice: joe_curve)
    engine = piper_engine.PiperVCEngine()
    scaled = {"base_voice": np.asarray("joe@1.20"), "rate": np.asarray(1.2),
              piper_engine.DURATION_RATIO_KEY: np.asarray(1.1)}
    assert engine._finetune_rate(scaled) == speaking_rate(1.1, joe_curve, RATE_RANGE) == 1.15
    assert engine._finetune_rate({"base_voice": np.asarray("joe"), "rate": np.asarray(0.95),
                                  piper_engine.DURATION_RATIO_KEY: np.asarray(1.1)}) == 0.95
    assert engine._finetune_rate({k: v for k, v in scaled.items() if k != piper_engine.DURATION_RATIO_KEY}) == 1.0
