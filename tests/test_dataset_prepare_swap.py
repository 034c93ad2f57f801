"""`dataset prepare` decodes every recording twice (to plan the cuts, then to write the segments),
holding one at a time. What happens when a recording changes or disappears between the two, and
that the new segments replace the old ones whole or not at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import voxmith.asr
import voxmith.datasets.prepare as prepare_module
import voxmith.datasets.staging as staging_module
from voxmith.cli.main import cli
from voxmith.datasets import PrepareSettings
from voxmith.errors import VoxmithError
from voxmith.studio import Studio

SETTINGS = PrepareSettings(min_seconds=1.0, max_seconds=6.0)


@pytest.fixture
def sources(tmp_path, demo_files, monkeypatch):
    """Copies of the demo recordings (to move and replace), and a stand-in transcriber."""
    heard = SimpleNamespace(text="Some words.", language="en",
                            segments=[SimpleNamespace(avg_logprob=-0.2, no_speech_prob=0.01)])
    monkeypatch.setattr(voxmith.asr, "get_transcriber",
                        lambda *a, **k: SimpleNamespace(transcribe=lambda *a, **k: heard))
    copies = []
    for i, path in enumerate(demo_files):
        copies.append(tmp_path / f"take{i}{path.suffix}")
        shutil.copyfile(path, copies[-1])
    return copies


def _studio(tmp_path) -> Studio:
    return Studio(tmp_path / "ws", device="cpu")


def _folder(tmp_path) -> Path:
    return tmp_path / "ws" / "datasets" / "ds"


def _snapshot(folder: Path) -> dict:
    """Every file in the dataset's folder and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _between_the_decodes(monkeypatch, change):
    """Run `change()` after every recording is planned, before any segment is written."""
    plan = prepare_module._plan

    def plan_then_change(*args, **kwargs):
        plans = plan(*args, **kwargs)
        change()
        return plans

    monkeypatch.setattr(prepare_module, "_plan", plan_then_change)


def test_a_recording_gone_before_its_segments_are_written_leaves_no_dataset(tmp_path, sources, monkeypatch):
    # Before: the first recording's segments stayed in audio/ with no segments.json, and the error
    # was a bare "Cannot read ...: file not found".
    _between_the_decodes(monkeypatch, sources[-1].unlink)
    with pytest.raises(VoxmithError, match=r"take1\.\w+' was moved or changed while the dataset was being "
                                           r"prepared; nothing was kept .* Run the command again"):
        _studio(tmp_path).prepare_dataset("ds", sources, SETTINGS)
    assert not _folder(tmp_path).exists()


def test_redo_with_a_recording_gone_keeps_the_old_dataset_whole(tmp_path, sources, monkeypatch):
    # Before: --redo deleted the old audio first, so the old segments.json named files that were gone.
    studio = _studio(tmp_path)
    studio.prepare_dataset("ds", sources, SETTINGS)
    before = _snapshot(_folder(tmp_path))
    assert any(name.startswith("audio") for name in before)
    removed = sources[-1].read_bytes()
    _between_the_decodes(monkeypatch, sources[-1].unlink)
    with pytest.raises(VoxmithError, match="was moved or changed"):
        studio.prepare_dataset("ds", sources, SETTINGS, redo=True)
    assert _snapshot(_folder(tmp_path)) == before
    assert sorted(p.name for p in _folder(tmp_path).iterdir()) == ["audio", "segments.json", "train.txt",
                                                                  "validation.txt"]
    monkeypatch.undo()
    sources[-1].write_bytes(removed)
    monkeypatch.setattr(voxmith.asr, "get_transcriber", lambda *a, **k: SimpleNamespace(
        transcribe=lambda *a, **k: SimpleNamespace(text="Other words.", language="en", segments=[])))
    again = studio.prepare_dataset("ds", sources, SETTINGS, redo=True)
    record = studio.datasets.get("ds").load()
    assert again["segments"] == len(record["segments"]) and again["untranscribed"] == 0
    assert {s["transcript"] for s in record["segments"]} == {"Other words."}
    assert sorted(p.name for p in (_folder(tmp_path) / "audio").iterdir()) == \
        sorted(Path(s["file"]).name for s in record["segments"])
    assert not [p for p in _folder(tmp_path).iterdir() if p.name.startswith(".")]


def test_a_recording_replaced_between_the_decodes_is_refused(tmp_path, sources, monkeypatch):
    # Before: the first recording's cut plan was applied to the other audio, under its fingerprint.
    _between_the_decodes(monkeypatch, lambda: shutil.copyfile(sources[0], sources[-1]))
    with pytest.raises(VoxmithError, match=r"take1\.\w+' was moved or changed"):
        _studio(tmp_path).prepare_dataset("ds", sources, SETTINGS)
    assert not _folder(tmp_path).exists()


def test_a_recording_unreadable_the_second_time_is_named_with_the_way_out(tmp_path, sources, monkeypatch):
    load, decoded = prepare_module.load_audio, []

    def second_decode_fails(path, *args, **kwargs):
        decoded.append(Path(path).name)
        if decoded.count(sources[-1].name) > 1:
            raise VoxmithError(f"Cannot read '{path}': input/output error.")
        return load(path, *args, **kwargs)

    monkeypatch.setattr(prepare_module, "load_audio", second_decode_fails)
    with pytest.raises(VoxmithError, match=r"could not be read a second time.*input/output error.*nothing was "
                                           r"kept.*still there"):
        _studio(tmp_path).prepare_dataset("ds", sources, SETTINGS)
    assert not _folder(tmp_path).exists()


def test_a_failed_swap_puts_the_old_segments_back(tmp_path, sources, monkeypatch):
    studio = _studio(tmp_path)
    studio.prepare_dataset("ds", sources, SETTINGS)
    before = _snapshot(_folder(tmp_path))

    def replace_refused(source, destination):  # as Windows does while another program has a file open
        raise PermissionError(13, "Access is denied", str(destination))

    monkeypatch.setattr(staging_module, "os", SimpleNamespace(replace=replace_refused))
    with pytest.raises(VoxmithError, match="Could not put the new segments .* the dataset is as it was"):
        studio.prepare_dataset("ds", sources, SETTINGS, redo=True)
    assert _snapshot(_folder(tmp_path)) == before
    assert not [p for p in _folder(tmp_path).iterdir() if p.name.startswith(".")]


def _redo_killed_in_the_swap(studio: Studio, sources, monkeypatch) -> None:
    """A --redo of "ds" (prepared) killed in its swap: the new audio in, the old set aside, the
    record not yet written, nothing cleaned up."""

    def killed(source, destination):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(staging_module, "os", SimpleNamespace(replace=killed))
        patch.setattr(staging_module, "_settle", lambda *a: None)  # a killed process cleans nothing up
        with pytest.raises(KeyboardInterrupt):
            studio.prepare_dataset("ds", sources[:1], SETTINGS, redo=True)


def test_a_run_killed_in_the_swap_is_undone_by_the_next(tmp_path, sources, monkeypatch):
    studio = _studio(tmp_path)
    studio.prepare_dataset("ds", sources, SETTINGS)
    before = _snapshot(_folder(tmp_path))
    _redo_killed_in_the_swap(studio, sources, monkeypatch)
    assert _snapshot(_folder(tmp_path)) != before  # the other run's audio, beside the old segments.json
    studio.prepare_dataset("ds", sources, SETTINGS)  # resumes the old dataset, as it was
    assert _snapshot(_folder(tmp_path)) == before
    assert not [p for p in _folder(tmp_path).iterdir() if p.name.startswith(".")]


def test_the_listing_undoes_a_redo_killed_in_the_swap(tmp_path, sources, monkeypatch):
    # Before: the other run's audio and the old one set aside stayed until that dataset was prepared again.
    studio = _studio(tmp_path)
    studio.prepare_dataset("ds", sources, SETTINGS)
    before = _snapshot(_folder(tmp_path))
    _redo_killed_in_the_swap(studio, sources, monkeypatch)
    assert [p for p in _folder(tmp_path).iterdir() if p.name.startswith(".")]
    assert studio.datasets.names() == ["ds"]
    assert _snapshot(_folder(tmp_path)) == before
    assert not [p for p in _folder(tmp_path).iterdir() if p.name.startswith(".")]


def test_writing_a_recording_s_segments_names_it_while_it_decodes(tmp_path, sources, monkeypatch):
    # Before: the bar named the previous recording while the next one was decoded.
    events = []
    load = prepare_module.load_audio

    def logged(path, *args, **kwargs):
        events.append(("decode", Path(path).name))
        return load(path, *args, **kwargs)

    monkeypatch.setattr(prepare_module, "load_audio", logged)
    progress = lambda event: events.append((event.stage, event.detail))  # noqa: E731
    _studio(tmp_path).prepare_dataset("ds", sources, SETTINGS, progress=progress)
    writing = events.index(("writing segments", sources[0].name))
    second_decodes = [i for i, event in enumerate(events)
                      if i > writing and event[0] == "decode" and event[1] in {p.name for p in sources}]
    assert [events[i][1] for i in second_decodes] == [p.name for p in sources]
    for i in second_decodes:
        assert events[i - 1] == ("writing segments", events[i][1])


def test_the_user_s_own_files_in_audio_outlive_a_prepare_and_a_redo(tmp_path, sources, monkeypatch):
    # Before: the swap deleted the whole old audio/ folder, the user's files in it too (a first prepare
    # included); the code before the swap deleted only audio/*.wav, and only with --redo.
    audio = _folder(tmp_path) / "audio"
    (audio / "raw").mkdir(parents=True)
    (audio / "raw" / "original.flac").write_bytes(b"the user's recording")
    (audio / "notes.txt").write_text("who said what")
    kept = sources[0].read_bytes()
    shutil.copyfile(sources[0], audio / "take0.wav")  # a source kept in the folder, and read from there
    studio = _studio(tmp_path)
    studio.prepare_dataset("ds", [audio / "take0.wav", sources[1]], SETTINGS)
    studio.prepare_dataset("ds", sources, SETTINGS, redo=True)
    assert (audio / "raw" / "original.flac").read_bytes() == b"the user's recording"
    assert (audio / "notes.txt").read_text() == "who said what"
    assert (audio / "take0.wav").read_bytes() == kept
    record = studio.datasets.get("ds").load()
    segments = sorted(Path(s["file"]).name for s in record["segments"])
    assert sorted(p.name for p in audio.iterdir() if p.name.startswith("ds_")) == segments


def test_a_run_killed_right_after_its_commit_gets_the_lists_of_its_own_segments(tmp_path, sources, monkeypatch):
    # Before: the lists written with the new record stayed in the staging folder; the old train.txt,
    # naming the old segments' transcripts, sat beside the new audio until another run.
    studio = _studio(tmp_path)
    studio.prepare_dataset("ds", sources, SETTINGS)
    dataset = studio.datasets.get("ds")
    assert (dataset.path / "train.txt").read_text().strip()
    replace = staging_module.os.replace

    def killed_after_the_commit(source, destination):
        if Path(source).name != "segments.json":
            raise KeyboardInterrupt
        replace(source, destination)

    with monkeypatch.context() as patch:
        patch.setattr(staging_module, "os", SimpleNamespace(replace=killed_after_the_commit))
        patch.setattr(staging_module, "_settle", lambda *a: None)  # a killed process cleans nothing up
        with pytest.raises(KeyboardInterrupt):
            studio.prepare_dataset("ds", sources, SETTINGS, redo=True)
    staging_module.settle_interrupted(dataset)  # what the next run does first
    record = dataset.load()
    assert all(s["transcript"] is None for s in record["segments"])  # killed before transcribing
    assert (dataset.path / "train.txt").read_text().strip() == ""
    assert not [p for p in dataset.path.iterdir() if p.name.startswith(".")]


def _killed_first_prepare(datasets: Path, name: str = "ds") -> Path:
    """What a first `dataset prepare` killed before its commit leaves, as `replacing_segments` makes
    it: the dataset's folder holding only a staging folder, with new audio and their segments.json."""
    folder = datasets / name
    folder.mkdir(parents=True)
    staging = Path(tempfile.mkdtemp(prefix=".preparing-", dir=folder))
    (staging / "audio").mkdir()
    sf.write(staging / "audio" / f"{name}_00001.wav", np.zeros(22050, np.float32), 22050)
    (staging / "segments.json").write_text('{"segments": [], "sources": [], "settings": {}}')
    return folder


def test_the_listing_clears_what_a_killed_first_prepare_left(tmp_path):
    # Before: the folder (gigabytes of segments, for a real run) was never listed, and only another
    # prepare under the same name cleared it. One that cannot be settled stays, and stops nothing.
    datasets = tmp_path / "ws" / "datasets"
    folder = _killed_first_prepare(datasets)
    stuck = _killed_first_prepare(datasets, "stuck")  # its old audio/ cannot go back: a full one is there
    (stuck / "audio").mkdir()
    (stuck / "audio" / "mine.wav").write_bytes(b"the user's")
    (next(stuck.glob(".preparing-*")) / "replaced-audio").mkdir()
    stuck_before = _snapshot(stuck)
    (datasets / "good").mkdir()
    (datasets / "good" / "segments.json").write_text('{"segments": [], "sources": [], "settings": {}}')
    listed = CliRunner().invoke(cli, ["--home", str(tmp_path / "ws"), "dataset", "list"])
    assert listed.exit_code == 0 and listed.output.split()[0] == "good", listed.output
    assert not folder.exists()
    assert _snapshot(stuck) == stuck_before


def test_a_killed_first_prepare_beside_the_user_s_own_file_leaves_the_file_and_its_folder(tmp_path):
    studio = _studio(tmp_path)
    folder = _killed_first_prepare(studio.workspace.datasets_dir)
    (folder / "notes.txt").write_text("mine")
    assert studio.datasets.names() == []
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_prepare_alive_in_another_process_keeps_its_staging_folder(tmp_path):
    studio = _studio(tmp_path)
    folder = _killed_first_prepare(studio.workspace.datasets_dir)
    before = _snapshot(folder)
    hold = ("import sys; from voxmith.fsutil import exclusive_lock\n"
            "with exclusive_lock(sys.argv[1], wait=False) as held:\n"
            "    print(held, flush=True); sys.stdin.read()")
    src = str(Path(voxmith.__file__).resolve().parents[1])
    # the lock `dataset prepare` holds for its whole run (Dataset.changing)
    holder = subprocess.Popen([sys.executable, "-c", hold, str(folder.parent / ".ds.lock")], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": src})
    try:
        assert holder.stdout.readline().strip() == "True"
        assert studio.datasets.names() == []
        assert _snapshot(folder) == before
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    studio.datasets.names()  # that run is over (killed): now its leftover goes
    assert not folder.exists()


def test_a_prepare_under_another_name_clears_what_a_killed_first_prepare_left(tmp_path, sources):
    studio = _studio(tmp_path)
    folder = _killed_first_prepare(studio.workspace.datasets_dir, "typo")
    studio.prepare_dataset("ds", sources, SETTINGS)
    assert not folder.exists()
