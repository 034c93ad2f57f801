"""The voice library: adding, replacing, extending, removing; never touching the user's files."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voxmith.errors import VoiceError, VoxmithError
from voxmith.studio.voices import Voice


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


def test_a_killed_adds_staging_folder_is_cleared_by_the_next_add_of_that_voice(studio, demo_files):
    """`voices add` copies clips into a hidden staging folder first; a kill (SIGKILL, power cut)
    left it in voices/ for good. The next change of the same voice (under its lock) removes its
    abandoned ones, never another voice's (a name that starts the same)."""
    root = studio.voices.root
    mine = root / ".staging-dan-ab12cd_3"
    theirs = root / ".staging-dan-ny-x1y2z3w4"  # voice 'dan-ny', whose name starts like 'dan'
    for folder in (mine, theirs):
        folder.mkdir(parents=True)
        (folder / "take.flac").write_bytes(b"half a copy")
    studio.voices.add("dan", demo_files[:1])
    assert not mine.exists() and theirs.exists()
    assert [p.name for p in studio.voices.get("dan").clip_paths] == [demo_files[0].name]


def test_append_same_file_twice_gets_unique_name(studio, demo_files):
    studio.voices.add("carol", demo_files[:1])
    voice = studio.voices.add("carol", demo_files[:1], append=True)
    assert len(voice.clip_paths) == 2


def _clips_meet_while_copying(monkeypatch):
    """Two adds that copy clips at the same time meet there (a barrier), as two processes may; an
    add kept out by a lock waits 2 s for the other, then goes on alone."""
    import threading

    from voxmith.studio import voices as voices_module

    meeting, real = threading.Barrier(2), voices_module._store_clip

    def store_clip(*args):
        with contextlib.suppress(threading.BrokenBarrierError):
            meeting.wait(timeout=2)
        return real(*args)

    monkeypatch.setattr(voices_module, "_store_clip", store_clip)


def test_two_adds_at_once_keep_every_clip(studio, tmp_path, demo_files, monkeypatch):
    """Two takes both called 'take.flac' appended at the same moment (two terminals, the web UI and
    the CLI): both are kept under distinct names and voice.json lists both, never one over the other."""
    from tests.concurrency import run_at_once

    studio.voices.add("dana", demo_files[:1])
    takes = []
    for i, source in enumerate(demo_files[:2]):
        (tmp_path / f"session{i}").mkdir()
        takes.append(Path(shutil.copy(source, tmp_path / f"session{i}" / "take.flac")))
    _clips_meet_while_copying(monkeypatch)
    queue = list(takes)
    assert run_at_once(lambda: studio.voices.add("dana", [queue.pop()], append=True)) == []
    voice = studio.voices.get("dana")
    assert len(voice.clip_paths) == 3
    assert {_digest(t) for t in takes} <= {_digest(p) for p in voice.clip_paths}
    assert set(voice.metadata["clips"]) == {p.name for p in voice.clip_paths}


def test_two_creations_at_once_one_is_told_the_voice_exists(studio, demo_files, monkeypatch):
    from tests.concurrency import run_at_once

    _clips_meet_while_copying(monkeypatch)
    errors = run_at_once(lambda: studio.voices.add("erin", demo_files[:1]))
    assert len(errors) == 1 and isinstance(errors[0], VoiceError) and "already exists" in str(errors[0])
    assert len(studio.voices.get("erin").clip_paths) == 1
    assert studio.voices.names() == ["erin"]


def test_a_damaged_voice_json_is_named_and_never_overwritten(studio, demo_files):
    """voice.json broken by hand made every command fail with 'Unexpected JSONDecodeError' (voices
    list and the server's voice list too, for every voice); read as empty, the next change would
    have written over the settings it holds."""
    from click.testing import CliRunner

    from voxmith.cli.main import cli

    studio.voices.add("fine", demo_files[:1])
    broken = studio.voices.add("broken", demo_files[:1])
    (broken.path / "voice.json").write_text('{"engine_settings": {"piper-vc": {"f0_scale": 1.1}}')
    with pytest.raises(VoiceError, match="voice.json' is damaged.*Fix it by hand"):
        studio.voices.add("broken", demo_files[1:], append=True)
    with pytest.raises(VoiceError, match="is damaged"):
        studio.voice_engine_settings("broken", "piper-vc")
    assert (broken.path / "voice.json").read_text() == '{"engine_settings": {"piper-vc": {"f0_scale": 1.1}}'
    listed = CliRunner().invoke(cli, ["--home", str(studio.workspace.home), "voices", "list"])
    assert listed.exit_code == 0 and "fine" in listed.output and "broken" in listed.output
    (broken.path / "voice.json").write_text("[1, 2]")
    with pytest.raises(VoiceError, match="holds a JSON list"):
        broken.metadata


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


def test_replace_moves_the_old_voice_to_the_trash(studio, demo_files):
    """--force keeps a way back: the old folder, clips dropped in by hand included, goes to the trash."""
    voice = studio.voices.add("fay", demo_files[:1])
    shutil.copy(demo_files[1], voice.path / "by hand.flac")
    assert [p.name for p in voice.hand_added_clips] == ["by hand.flac"]
    (voice.path / ".cache").mkdir(exist_ok=True)  # derived data: dropped from the backup
    studio.voices.add("fay", demo_files[1:], force=True)
    backup = Path(studio.voices.get("fay").metadata["replaced"]["backup"])
    assert backup.parent.parent == studio.workspace.home / "trash" / "voices"
    assert sorted(p.name for p in backup.iterdir()) == sorted([demo_files[0].name, "by hand.flac", "voice.json"])
    assert [p.name for p in studio.voices.get("fay").clip_paths] == [demo_files[1].name]
    # A second replace in the same second gets its own backup folder.
    studio.voices.add("fay", demo_files[:1], force=True)
    second = Path(studio.voices.get("fay").metadata["replaced"]["backup"])
    assert second != backup and backup.exists() and second.exists()


def test_remove_moves_to_the_trash(studio, demo_files):
    studio.voices.add("gil", demo_files[:1])
    backup = studio.voices.remove("gil")
    assert not studio.voices.exists("gil")
    assert [p.name for p in Voice("gil", backup).clip_paths] == [demo_files[0].name]


def test_failed_replace_leaves_no_empty_backup(studio, demo_files, tmp_path):
    studio.voices.add("hal", demo_files[:1])
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(44100, np.float32), 22050)
    with pytest.raises(VoiceError):
        studio.voices.add("hal", [silent], force=True)
    trash = studio.workspace.home / "trash" / "voices"
    assert not trash.exists() or not list(trash.iterdir())


def test_cli_replace_asks_first(tmp_path, demo_files):
    from click.testing import CliRunner

    from voxmith.cli.main import cli

    home = tmp_path / "home"

    def run(*args, input=None):
        return CliRunner().invoke(cli, ["--home", str(home), "-q", "voices", *args], input=input)

    assert run("add", "ida", str(demo_files[0])).exit_code == 0
    shutil.copy(demo_files[1], home / "voices" / "ida" / "mine.flac")
    refused = run("add", "ida", "--force", str(demo_files[1]), input="n\n")
    assert refused.exit_code == 1 and "1 of them added by hand" in refused.output
    assert sorted(p.name for p in (home / "voices" / "ida").iterdir() if p.suffix == ".flac") == \
        sorted([demo_files[0].name, "mine.flac"])
    accepted = run("add", "ida", "--force", str(demo_files[1]), input="y\n")
    assert accepted.exit_code == 0 and "move them back to undo" in accepted.output
    assert run("add", "ida", "--force", "-y", str(demo_files[0])).exit_code == 0
    assert len(list((home / "trash" / "voices").iterdir())) == 2


def test_web_ui_replace_needs_confirmation(studio, demo_files):
    pytest.importorskip("gradio")
    from voxmith.webui.tab_voices import save_voice

    save_voice(studio, "jo", demo_files[:1], "create", False)
    with pytest.raises(VoxmithError, match="Tick 'Yes, replace it'"):
        save_voice(studio, "jo", demo_files[1:], "replace", False)
    assert [p.name for p in studio.voices.get("jo").clip_paths] == [demo_files[0].name]
    _, note = save_voice(studio, "jo", demo_files[1:], "replace", True)
    assert "trash" in note and [p.name for p in studio.voices.get("jo").clip_paths] == [demo_files[1].name]
