"""The check of fine-tuned weights on a voice (Engine.check_finetune, which the studio caches): run
once when several requests put the same weights to use at the same moment, and old checks pruned
when a new one completes. With the fine-tunable tone engine and stood-in runs (tests/tone_engine.py);
what is under test is the studio's caching and locking."""

from __future__ import annotations

import time

import pytest

from tests.concurrency import run_at_once
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
    results = []
    errors = run_at_once(lambda: results.append(Studio(tmp_path / "ws", device="cpu").training.use("demo", "ft")))
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
    results = []

    def enroll():
        other = Studio(tmp_path / "ws", device="cpu")
        results.append(other.conditioning("demo", other.engine("tone")))

    assert run_at_once(enroll) == []
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


def test_a_new_entry_replaces_the_stale_ones_but_never_removes_a_lock(tmp_path):
    """A lock file that is held stays where it is when a new entry replaces the stale ones: removing
    it would let a second holder in beside the first (two computations of one entry)."""
    import numpy as np

    from voxmith.fsutil import exclusive_lock
    from voxmith.studio.conditioning import CacheKey, ConditioningCache

    cache = ConditioningCache(tmp_path / "voice")
    old, new = CacheKey("tone", "tone-1", "clips-a"), CacheKey("tone", "tone-1", "clips-b")
    assert cache.get_or_compute_once(old, lambda: {"x": np.ones(2)})[1] is False
    old_lock = cache.root / "tone" / f"{old.file_stem}.lock"
    with exclusive_lock(old_lock) as held:  # someone computing the old clip set's entry right now
        assert held
        assert cache.get_or_compute_once(new, lambda: {"x": np.zeros(2)})[1] is False
        with exclusive_lock(old_lock, wait=False) as second:
            assert not second
    assert sorted(p.suffix for p in (cache.root / "tone").iterdir()) == [".json", ".lock", ".lock", ".npz"]
    assert cache.load(old) is None
    assert cache.get_or_compute_once(new, lambda: {"x": np.ones(3)})[0]["x"].tolist() == [0.0, 0.0]


def test_prune_goes_by_last_use_and_leaves_other_writers_files(tmp_path):
    """`prune` ranks namespaces by when they were last used (kept in the sidecar, in nanoseconds; file
    times can be coarse, or changed by a copy of the workspace) and never removes another writer's
    temporary file (".NAME..."): that namespace's folder stays until the writer is done."""
    import os

    import numpy as np

    from voxmith.studio.conditioning import CacheKey, ConditioningCache

    cache = ConditioningCache(tmp_path / "voice")
    keys = {name: CacheKey(f"p-{name}", "v1", "clips") for name in ("a", "b", "c", "d", "new")}
    for key in keys.values():
        cache.store(key, {"x": np.ones(1)})
    for name in ("c", "a", "b", "d"):  # used in this order: c least recently
        cache.touch(keys[name])
    for k, name in enumerate(("b", "d", "a", "c")):  # file times that say otherwise (c newest)
        sidecar = cache.root / f"p-{name}" / f"{keys[name].file_stem}.json"
        os.utime(sidecar, ns=(1_000_000_000 * (k + 1), 1_000_000_000 * (k + 1)))
    writing = cache.root / "p-b" / f".{keys['b'].file_stem}.json.x1y2.json"
    writing.write_text("{}")  # another process writing p-b's sidecar at this moment
    # d kept (used last); b's entry went but its folder stays (not counted as removed), then a and c
    assert cache.prune("p-", keep=["p-new"], keep_recent=1) == ["p-a", "p-c"]
    assert sorted(p.name for p in cache.root.iterdir()) == ["p-b", "p-d", "p-new"]
    assert [p.name for p in (cache.root / "p-b").iterdir()] == [writing.name]
    assert cache.load(keys["d"]) is not None and cache.load(keys["new"]) is not None


def test_a_voice_keeps_the_check_of_the_weights_it_uses_while_others_are_tried(tmp_path, tuned_tone):
    """Trying other checkpoints (`--run`) never prunes the check of the weights the voice is set to
    use (`voices use`): speaking with them again does not check them again."""
    studio = _studio(tmp_path)
    studio.training.use("demo", "ft", 1)
    for step in range(2, 7):
        finetune, _, _ = studio.training.finetune("ft", step)
        studio.check_finetune("demo", finetune, "tone")
        assert _check_of(1) in _checks_kept(studio), step
        assert len(_checks_kept(studio)) == min(step, FINETUNE_CHECKS_KEPT)
    assert _checks_kept(studio) == [_check_of(1), _check_of(5), _check_of(6)]
    assert len(tuned_tone.checks) == 6
    studio.training.use("demo", "ft", 1)
    assert len(tuned_tone.checks) == 6  # still cached


def test_waiting_for_a_lock_reports_progress_can_be_stopped_and_is_bounded(tmp_path, monkeypatch):
    """A waiter reports while it waits (a cancelled request stops there), and after the limit says
    which lock another voxmith process holds rather than waiting forever."""
    from voxmith import fsutil
    from voxmith.errors import VoxmithError

    monkeypatch.setattr(fsutil, "LOCK_WAIT_STEP_S", 0.05)
    lock = tmp_path / "entry.lock"
    waited = []
    with fsutil.exclusive_lock(lock):
        with pytest.raises(VoxmithError, match="Another voxmith process .*entry.lock") as refused:
            with fsutil.exclusive_lock(lock, waiting=waited.append, limit_s=0.5):
                raise AssertionError("the lock was granted while held")
        assert "try again" in str(refused.value) and len(waited) >= 3 and waited == sorted(waited)

        class Cancelled(Exception):
            pass

        def cancel(_seconds):
            raise Cancelled

        with pytest.raises(Cancelled):
            with fsutil.exclusive_lock(lock, waiting=cancel):
                raise AssertionError("the lock was granted while held")
    with fsutil.exclusive_lock(lock, limit_s=0.5) as held:  # free again: granted at once
        assert held


def test_a_file_system_without_locks_runs_without_the_lock(tmp_path, monkeypatch):
    """filelock raises NotImplementedError where it has no way to lock: the work runs unlocked, as
    where the lock file cannot be made."""
    import filelock

    from voxmith.fsutil import exclusive_lock

    def no_locks(self, *args, **kwargs):
        raise NotImplementedError

    monkeypatch.setattr(filelock.FileLock, "acquire", no_locks)
    with exclusive_lock(tmp_path / "x.lock") as held:
        assert held
