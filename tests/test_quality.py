"""Naturalness (DistillMOS, real weights from the wheel) and the ranking rules that use it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from voxmith.studio.ranking import RankingSettings, TakeScores, choose_take, needs_regeneration, refusal


def _take(score: float, mos, wer: float = 0.0, deletions: int = 0) -> TakeScores:
    return TakeScores(similarity=score, wer=wer, deletions=deletions, insertions=0, transcript="",
                      score=score - wer, naturalness=mos)


@pytest.fixture(scope="module")
def mos_model():
    import importlib.util

    if importlib.util.find_spec("distillmos") is None:
        pytest.skip("distillmos is not installed (make install puts it in)")
    from voxmith.quality import get_naturalness_model

    return get_naturalness_model()


def test_real_speech_beats_the_same_speech_broken(mos_model, demo_audio):
    x = demo_audio.samples[: 6 * demo_audio.sample_rate_hz]
    rng = np.random.default_rng(0)
    # Buzz and hiss: the clip chopped to a 150 Hz square-wave gate plus loud noise.
    gate = (np.sin(2 * np.pi * 150 * np.arange(x.size) / demo_audio.sample_rate_hz) > 0).astype(np.float32)
    broken = x * gate + 0.05 * rng.standard_normal(x.size).astype(np.float32)
    clean, bad = mos_model.score(x, demo_audio.sample_rate_hz), mos_model.score(broken, demo_audio.sample_rate_hz)
    assert 1.0 <= bad < clean - 0.5 <= 5.0
    assert mos_model.score(x, demo_audio.sample_rate_hz) == clean  # deterministic
    assert mos_model.score(np.zeros(100, np.float32), 16000) == 1.0  # nothing to judge: the floor


def test_torchaudio_stand_in_does_not_leak(mos_model):
    import importlib.util

    if importlib.util.find_spec("torchaudio") is None:
        assert "torchaudio" not in sys.modules


def test_take_whose_naturalness_collapses_is_refused():
    settings = RankingSettings(min_naturalness=1.5, naturalness_drop=0.6)
    takes = [_take(0.80, 1.9), _take(0.70, 3.1), _take(0.75, 2.8)]
    best, reasons = choose_take(takes, settings)
    assert best == 2  # the best-scoring take lost 1.2 MOS against take 2: refused
    assert "collapsed" in reasons[0] and reasons[1] is None and reasons[2] is None


def test_floor_and_skipped_words_refuse_and_regenerate():
    settings = RankingSettings(min_naturalness=1.5)
    assert "below the floor" in refusal(_take(0.9, 1.2), settings)
    assert needs_regeneration(_take(0.9, 1.2), settings)
    assert "skips" in refusal(_take(0.9, 4.0, wer=0.1, deletions=1), settings)
    assert refusal(_take(0.9, None), settings) is None  # not measured: not judged
    assert not needs_regeneration(_take(0.9, 2.0), settings)


def test_all_refused_falls_back_to_the_best_score():
    takes = [_take(0.6, 1.1), _take(0.9, 1.2)]
    best, reasons = choose_take(takes, RankingSettings())
    assert best == 1 and all(reasons)
