"""The voice library: adding, replacing, extending, removing; never touching the user's files."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import soundfile as sf

from voxmith.errors import VoiceError, VoxmithError


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _user_clips(tmp_path, demo_files):
    """Copies of the demo clips in a 'user folder', with awkward names."""
    folder = tmp_path / "my recordings"
    folder.mkdir()
    paths = []
    for i, src in enumerate(demo_files):
        dst = folder / f"Take ({i}) final.FLAC"
        shutil.copy(src, dst)
        paths.append(dst)
    return paths


def test_add_copies_and_never_modifies_originals(studio, tmp_path, demo_files):
    clips = _user_clips(tmp_path, demo_files)
    before = {p: (_digest(p), p.stat().st_mtime_ns) for p in clips}
    voice = studio.voices.add("alice", clips)
    assert [p.name for p in voice.clip_paths] == ["Take_0_final.flac", "Take_1_final.flac"]
    assert voice.path.parent == studio.workspace.voices_dir
    for p in clips:
        assert (_digest(p), p.stat().st_mtime_ns) == before[p]
    assert {_digest(p) for p in voice.clip_paths} == {d for d, _ in before.values()}
    meta = voice.metadata
    assert set(meta["clips"]) == {"Take_0_final.flac", "Take_1_final.flac"}
    assert meta["clips"]["Take_0_final.flac"]["original"].endswith("Take (0) final.FLAC")


def test_existing_voice_needs_force_or_append(studio, demo_files):
    studio.voices.add("bob", demo_files[:1])
    with pytest.raises(VoiceError, match="--force"):
        studio.voices.add("bob", demo_files[1:])
    assert len(studio.voices.get("bob").clip_paths) == 1

    studio.voices.add("bob", demo_files[1:], append=True)
    assert len(studio.voices.get("bob").clip_paths) == 2

    studio.voices.add("bob", demo_files[:1], force=True)
    assert [p.name for p in studio.voices.get("bob").clip_paths] == [demo_files[0].name]


def test_append_same_file_twice_gets_unique_name(studio, demo_files):
    studio.voices.add("carol", demo_files[:1])
    voice = studio.voices.add("carol", demo_files[:1], append=True)
    assert len(voice.clip_paths) == 2


def test_bad_clip_changes_nothing(studio, tmp_path, demo_files):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(44100, np.float32), 22050)
    with pytest.raises(VoiceError) as info:
        studio.voices.add("dave", [demo_files[0], silent, tmp_path / "missing.wav"])
    message = str(info.value)
    assert "silent.wav" in message and "missing.wav" in message and "2 of 3" in message
    assert not studio.voices.exists("dave")
    assert studio.voices.names() == []
    # ...and an existing voice is not damaged by a failed --force.
    studio.voices.add("dave", demo_files)
    with pytest.raises(VoiceError):
        studio.voices.add("dave", [silent], force=True)
    assert len(studio.voices.get("dave").clip_paths) == 2
    assert not [p for p in studio.workspace.voices_dir.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("name", ["../escape", "/etc", "a/../../b", "..", "x\x00y"])
def test_names_cannot_escape_workspace(studio, demo_files, name):
    with pytest.raises(VoxmithError):
        studio.voices.add(name, demo_files[:1])
    outside = list(studio.workspace.home.parent.iterdir())
    assert [p.name for p in outside] == ["workspace"]


def test_list_get_remove(studio, demo_files):
    studio.voices.add("b-voice", demo_files[:1])
    studio.voices.add("a-voice", demo_files[1:])
    assert studio.voices.names() == ["a-voice", "b-voice"]
    studio.voices.remove("a-voice")
    assert studio.voices.names() == ["b-voice"]
    with pytest.raises(VoiceError, match="No voice named 'a-voice'.*b-voice"):
        studio.voices.get("a-voice")
    assert all(p.exists() for p in demo_files)  # originals survive removal


def test_clips_dropped_in_by_hand_are_used(studio, demo_files):
    voice = studio.voices.add("eve", demo_files[:1])
    fingerprint = voice.fingerprint()
    shutil.copy(demo_files[1], voice.path / "manual.flac")
    (voice.path / "notes.txt").write_text("not a clip")
    assert [p.name for p in voice.clip_paths] == [demo_files[0].name, "manual.flac"]
    assert voice.fingerprint() != fingerprint


def test_demo_voice_import_is_idempotent(studio):
    voice = studio.import_demo_voice()
    assert len(voice.clip_paths) == 2
    assert studio.import_demo_voice().path == voice.path
