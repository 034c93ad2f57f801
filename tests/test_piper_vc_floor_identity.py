"""What the guard's floor kept on disk is keyed by: a floor measured by an earlier voxmith (another
way of measuring it, another engine version) is never read back after an upgrade."""

from __future__ import annotations

from voxmith.engines.piper_vc import guard
from voxmith.engines.piper_vc.engine import PiperVCEngine, PiperVCNaturalEngine
from voxmith.engines.piper_vc.intelligibility import transcribe_clip

VOICE = type("Voice", (), {"identity": ("joe", "1")})()


def test_the_floor_identity_names_the_floor_version_and_the_engine_version(monkeypatch):
    identity = guard.floor_identity(VOICE, 1.2, ("whisper=x",), engine="piper-vc-8")
    assert guard.floor_identity(VOICE, 1.2, ("whisper=x",), engine="piper-vc-9") != identity
    monkeypatch.setattr(guard, "FLOOR_VERSION", guard.FLOOR_VERSION + 1)
    assert guard.floor_identity(VOICE, 1.2, ("whisper=x",), engine="piper-vc-8") != identity

    monkeypatch.setattr("voxmith.engines.piper_vc.engine.transcriber_identity", lambda: ("whisper=x",))
    stock = PiperVCEngine._floor_identity(VOICE, 1.2, transcribe_clip)
    assert f"engine=piper-vc-{PiperVCEngine.version}" in stock
    monkeypatch.setattr(PiperVCEngine, "version", PiperVCEngine.version + "-next")
    assert PiperVCEngine._floor_identity(VOICE, 1.2, transcribe_clip) != stock
    assert PiperVCNaturalEngine._floor_identity(VOICE, 1.2, transcribe_clip) != stock
    assert PiperVCEngine._floor_identity(VOICE, 1.2, lambda samples, rate: "") is None  # not Whisper: not kept


def test_an_enrollment_that_fails_leaves_no_background_work_running(monkeypatch):
    """The floor and the base voice's check takes are made on other threads while the network
    trains; when the training fails (or is cancelled through progress), the enrollment waits for
    that work before it raises, so nothing of it goes on after."""
    import threading
    import time
    from types import SimpleNamespace

    import pytest

    from voxmith.engines.piper_vc import adaptation
    from voxmith.engines.piper_vc import engine as engine_module

    finished = []

    def slow(name):
        def work(*args, **kwargs):
            time.sleep(0.3)
            finished.append(name)
            return 0
        return work

    class Stopped(Exception):
        pass

    def training_fails(*args, **kwargs):
        raise Stopped

    monkeypatch.setattr(engine_module, "get_base_voice", lambda name: VOICE)
    monkeypatch.setattr(PiperVCEngine, "_base_speaker", lambda self, rate, voice: None)
    monkeypatch.setattr(PiperVCEngine, "_floor_identity", classmethod(lambda cls, *args: None))
    monkeypatch.setattr(PiperVCEngine, "_check_takes", lambda self, *args: slow("takes")())
    monkeypatch.setattr(guard, "floor", slow("floor"))
    monkeypatch.setattr(adaptation, "train_residual", training_fails)
    result = SimpleNamespace(base=None, rate=1.0, utterances=[], params=None)
    before = threading.active_count()
    with pytest.raises(Stopped):
        PiperVCEngine().conditioning_from(result)
    assert sorted(finished) == ["floor", "takes"]
    time.sleep(0.05)
    assert threading.active_count() <= before
