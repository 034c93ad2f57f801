"""The check of fine-tuned weights on a voice (Engine.check_finetune, which the studio caches): run
once when several requests put the same weights to use at the same moment, and old checks pruned
when a new one completes. With the fine-tunable tone engine and stood-in runs (tests/tone_engine.py);
what is under test is the studio's caching and locking."""

from __future__ import annotations

import threading
import time

import pytest

from voxmith.studio import Studio
from voxmith.studio.studio import FINETUNE_CHECKS_KEPT


@pytest.fixture
def tuned_tone(monkeypatch, tmp_path):
    from tests.tone_engine import TunedToneEngine, stand_in_runs
    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine

    stand_in_runs(monkeypatch, tmp_path)
    register_engine("tone", TunedToneEngine)
    yield TunedToneEngine
    unregister_engine("tone")


def _studio(tmp_path) -> Studio:
    studio = Studio(tmp_path / "ws", device="cpu")
    studio.import_demo_voice()
    return studio


def _checks_kept(studio: Studio) -> list:
    return sorted(p.name for p in (studio.voices.get("demo").path / ".cache").iterdir()
                  if p.name.startswith("tone.finetune-"))


def _check_of(step: int) -> str:
    """The cache folder of the check of stood-in step `step` (TunedToneEngine.finetune_check_key)."""
    return f"tone.finetune-check1-{1 + step / 10:.6f}"


def test_two_requests_putting_the_same_weights_to_use_check_them_once(tmp_path, tuned_tone, monkeypatch):
    studio = _studio(tmp_path)
    studio.conditioning("demo", studio.engine("tone"))  # enrolled first: only the check is contended
    real = tuned_tone.check_finetune
    running = []

    def slow_check(self, conditioning, progress=None):
        running.append(1)
        time.sleep(0.5)  # long enough for the other thread to arrive while this one checks
        return real(self, conditioning, progress)

    monkeypatch.setattr(tuned_tone, "check_finetune", slow_check)
    start, results, errors = threading.Barrier(2), [], []

    def use():
        start.wait()
        try:
            results.append(Studio(tmp_path / "ws", device="cpu").training.use("demo", "ft"))
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(running) == 1 and len(tuned_tone.checks) == 1
    assert results[0] == results[1] and results[0]["step"] == 7
    assert len(_checks_kept(studio)) == 1


def test_checks_of_weights_no_longer_used_are_pruned(tmp_path, tuned_tone):
    studio = _studio(tmp_path)
    kept = []
    for step in range(1, 6):  # a run trained on and put to use after each stretch
        studio.training.use("demo", "ft", step)
        kept.append(_checks_kept(studio))
    assert len(tuned_tone.checks) == 5
    assert [len(k) for k in kept] == [1, 2, 3, 3, 3] and FINETUNE_CHECKS_KEPT == 3  # per voice and engine
    assert kept[-1] == [_check_of(3), _check_of(4), _check_of(5)]  # the newest; steps 1 and 2 pruned

    # A kept check that is used again stays (it is the most recent use); the current one is never pruned.
    studio.training.use("demo", "ft", 4)
    assert len(tuned_tone.checks) == 5  # cached
    studio.training.use("demo", "ft", 6)  # a new check: prunes the least recently used (step 3's)
    assert len(tuned_tone.checks) == 6
    studio.training.use("demo", "ft", 4)
    studio.training.use("demo", "ft", 6)
    assert len(tuned_tone.checks) == 6  # both kept
    studio.training.use("demo", "ft", 3)
    assert len(tuned_tone.checks) == 7  # pruned before: checked again
    assert _checks_kept(studio) == [_check_of(3), _check_of(4), _check_of(6)]
    # only the checks' own folders went: the voice's clips and conditioning are all there
    voice = studio.voices.get("demo")
    assert len(voice.clip_paths) == 2 and (voice.path / ".cache" / "tone").is_dir()


def test_a_voice_enrolled_by_two_requests_at_once_is_enrolled_once(tmp_path, tuned_tone, monkeypatch, caplog):
    _studio(tmp_path)
    real, calls = tuned_tone.prepare_conditioning, []

    def slow_enrollment(self, clips, progress=None):
        calls.append(1)
        time.sleep(0.5)
        return real(self, clips, progress)

    monkeypatch.setattr(tuned_tone, "prepare_conditioning", slow_enrollment)
    start, results = threading.Barrier(2), []

    def enroll():
        start.wait()
        other = Studio(tmp_path / "ws", device="cpu")
        results.append(other.conditioning("demo", other.engine("tone")))

    threads = [threading.Thread(target=enroll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and sorted(cached for _, cached in results) == [False, True]
    assert "cannot write the cache" not in caplog.text


def test_a_lock_that_cannot_be_made_does_not_stop_the_work(tmp_path):
    """Where the lock file cannot be created (a read-only workspace: nothing there to protect), the
    lock is skipped rather than the work refused."""
    from voxmith.fsutil import exclusive_lock

    (tmp_path / "a-file").write_text("not a folder")
    with exclusive_lock(tmp_path / "a-file" / "x.lock") as held:
        assert held
    with exclusive_lock(tmp_path / "x.lock") as held, exclusive_lock(tmp_path / "x.lock", wait=False) as other:
        assert held and not other


def test_a_new_entry_replaces_the_stale_ones_and_their_locks(tmp_path):
    import numpy as np

    from voxmith.studio.conditioning import CacheKey, ConditioningCache

    cache = ConditioningCache(tmp_path / "voice")
    old, new = CacheKey("tone", "tone-1", "clips-a"), CacheKey("tone", "tone-1", "clips-b")
    assert cache.get_or_compute_once(old, lambda: {"x": np.ones(2)})[1] is False
    assert cache.get_or_compute_once(new, lambda: {"x": np.zeros(2)})[1] is False
    assert sorted(p.suffix for p in (cache.root / "tone").iterdir()) == [".json", ".lock", ".npz"]
    assert cache.get_or_compute_once(new, lambda: {"x": np.ones(3)})[0]["x"].tolist() == [0.0, 0.0]
