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

