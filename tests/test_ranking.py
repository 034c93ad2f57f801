"""Ranking settings' bounds (the scoring itself: tests/test_speak.py, tests/test_quality.py)."""

import pytest

from voxmith.errors import VoxmithError
from voxmith.studio.ranking import RankingSettings


def test_ranking_bounds_are_refused_in_words():
    RankingSettings(max_wer=0.0, regenerate_limit=10).validate()
    for bad in (RankingSettings(max_wer=1.5), RankingSettings(regenerate_limit=11), RankingSettings(regenerate_limit=-1)):
        with pytest.raises(VoxmithError, match="between"):
            bad.validate()
