"""Dataset preparation on real speech: cuts in pauses, LJSpeech output, resume, edits, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from voxmith.audio import load_audio
from voxmith.audio.dsp import frame_rms_db
from voxmith.cli.main import cli
from voxmith.datasets import DatasetLibrary, PrepareSettings
from voxmith.datasets.ljspeech import read_list, split_train_validation
from voxmith.errors import VoxmithError


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory, demo_files):
    """~47 s of real speech: the demo clips back to back (no added gaps) and repeated, with one
    long pause in the middle, so the slicer must find natural pauses to stay under 12 s."""
    clips = [load_audio(p) for p in demo_files]
    rate = clips[0].sample_rate_hz
    parts = [clips[0].samples, clips[1].samples, np.zeros(int(1.5 * rate), np.float32),
             clips[1].samples, clips[0].samples, clips[1].samples[: int(4 * rate)]]
    path = tmp_path_factory.mktemp("rec") / "long recording.wav"
    sf.write(path, np.concatenate(parts), rate, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, long_recording):
    from voxmith.studio import Studio

    studio = Studio(tmp_path_factory.mktemp("ds") / "ws", device="cpu")
    summary = studio.prepare_dataset("lj", [long_recording])
    return studio, summary


def test_segments_are_within_bounds_and_cut_in_pauses(prepared, long_recording):
    studio, summary = prepared
    record = studio.datasets.get("lj").load()
    source = load_audio(long_recording, sample_rate_hz=16000)  # 10 ms = 160 samples exactly
    levels = frame_rms_db(source.samples, 16000, 10)
    speech_level = np.percentile(levels, 90)
    assert len(record["segments"]) >= 4
    for segment in record["segments"]:
        assert 2.0 <= segment["duration_s"] <= 12.0 + 2 * 0.15 + 1e-6, segment
        assert "forced cut (no pause found)" not in segment["flags"]
    cuts = [s["end_s"] for s in record["segments"][:-1]] + [s["start_s"] for s in record["segments"][1:]]
    for cut in cuts:
        # The 30 ms around every cut is far below speech level: it lies in a pause, not a word.
        frame = int(cut * 100)
        assert levels[max(0, frame - 1): frame + 2].max() < speech_level - 20, cut
    assert summary["usable"] == len(record["segments"])


def test_ljspeech_files_parse_and_match_audio(prepared):
    studio, _ = prepared
    dataset = studio.datasets.get("lj")
    train, validation = read_list(dataset.path / "train.txt"), read_list(dataset.path / "validation.txt")
    assert train, "train.txt must never be empty"
    assert not set(train) & set(validation)
    for audio_file, text in {**train, **validation}.items():
        assert audio_file.startswith("audio/lj_") and audio_file.endswith(".wav")
        info = sf.info(dataset.path / audio_file)
        assert info.samplerate == 22050 and info.channels == 1
        assert len(text.split()) >= 3 and "|" not in text
    all_text = " ".join(train.values()).lower()
    assert "lowercase" in all_text or "lower case" in all_text  # words of the LJ clip were heard


def test_small_dataset_goes_to_train_and_says_so(prepared):
    studio, summary = prepared
    assert summary["validation"] == 0 and "everything is in train.txt" in summary["note"]


def test_split_is_deterministic_and_never_empties_train():
    ids = [f"x_{i:05d}" for i in range(100)]
    train, validation, note = split_train_validation(ids, 0.05)
    assert len(validation) == 5 and len(train) == 95 and not note
    assert split_train_validation(ids, 0.05)[1] == validation
    # Adding segments does not move existing ones between lists.
    more_train, more_validation, _ = split_train_validation(ids + [f"x_{i:05d}" for i in range(100, 120)], 0.05)
    assert set(validation) - set(more_validation) <= set(more_train) and len(more_validation) == 6
    assert split_train_validation(ids[:12], 0.45)[0]


def test_resume_transcribes_only_what_is_missing(prepared, long_recording):
    studio, _ = prepared
    dataset = studio.datasets.get("lj")
    record = dataset.load()
    before = {s["id"]: s["transcript"] for s in record["segments"]}
    record["segments"][1]["transcript"] = None  # as if interrupted before this one
    dataset.save(record)
    summary = studio.prepare_dataset("lj", [long_recording])
    assert summary["transcribed_now"] == 1
    after = {s["id"]: s["transcript"] for s in dataset.load()["segments"]}
    assert after == before
    assert studio.prepare_dataset("lj", [long_recording])["transcribed_now"] == 0


def test_interrupted_run_leaves_consistent_dataset(tmp_path, long_recording):
    from voxmith.studio import Studio

    studio = Studio(tmp_path / "ws", device="cpu")

    def interrupt_after_two(event):
        if event.stage == "transcribing" and event.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        studio.prepare_dataset("cut", [long_recording], progress=interrupt_after_two)
    dataset = studio.datasets.get("cut")
    record = dataset.load()
    done = [s for s in record["segments"] if s["transcript"] is not None]
    assert len(done) == 2
    listed = {**read_list(dataset.path / "train.txt"), **read_list(dataset.path / "validation.txt")}
    assert set(listed) == {s["file"] for s in done}
    summary = studio.prepare_dataset("cut", [long_recording])
    assert summary["transcribed_now"] == len(record["segments"]) - 2 and summary["untranscribed"] == 0


def test_edit_and_drop_persist(prepared):
    studio, _ = prepared
    dataset = studio.datasets.get("lj")
    first = dataset.load()["segments"][0]
    dataset.edit("1", text="A corrected   transcript.")
    assert read_list(dataset.path / "train.txt")[first["file"]] == "A corrected transcript."
    assert studio.datasets.get("lj").load()["segments"][0]["edited"] is True
    dataset.edit(first["id"], drop=True)
    assert first["file"] not in read_list(dataset.path / "train.txt")
    dataset.edit("1", restore=True)
    assert first["file"] in read_list(dataset.path / "train.txt")
    with pytest.raises(VoxmithError, match="no segment '999'"):
        dataset.edit("999", text="x")
    # An edit while another process prepares (or edits) the dataset would be overwritten by that
    # run's next write of the record: refused, the record untouched.
    from voxmith.fsutil import exclusive_lock

    before = (dataset.path / "segments.json").read_bytes()
    with exclusive_lock(dataset.path.parent / ".lj.lock") as held:  # as a `dataset prepare` holds it
        assert held
        with pytest.raises(VoxmithError, match="being prepared or edited by another voxmith process.*edit it when"):
            dataset.edit("1", text="Lost words.")
    assert (dataset.path / "segments.json").read_bytes() == before
    dataset.edit("1", text="A corrected transcript, kept.")  # and once it has finished
    assert dataset.load()["segments"][0]["transcript"] == "A corrected transcript, kept."


def test_a_recording_at_a_rate_too_low_for_speech_is_refused(tmp_path, demo_audio):
    """A header claiming 1 Hz was read as a recording hours long and resampled for the VAD
    (gigabytes for a second of 22 kHz samples)."""
    from voxmith.studio import Studio

    path = tmp_path / "one-hertz.wav"
    sf.write(path, demo_audio.samples[:2000], 1)
    with pytest.raises(VoxmithError, match="sample rate of 1 Hz"):
        Studio(tmp_path / "ws", device="cpu").prepare_dataset("d", [path])


def test_drop_and_restore_at_once_is_refused(tmp_path):
    """`dataset edit NAME 1 --drop --restore` restored the segment, silently (the later flag won)."""
    from voxmith.datasets.store import Dataset

    (tmp_path / "ds").mkdir()
    with pytest.raises(VoxmithError, match="not both"):
        Dataset("ds", tmp_path / "ds").edit("1", drop=True, restore=True)


def test_a_damaged_segments_json_is_named_and_the_other_datasets_still_listed(tmp_path):
    """segments.json edited by hand into something that is not JSON made `dataset list`, `show`,
    `edit` and `train init` fail with 'Unexpected JSONDecodeError ... a bug'."""
    datasets = tmp_path / "ws" / "datasets"
    for name, content in (("good", '{"segments": [], "sources": [], "settings": {}}'), ("bad", "{oops")):
        (datasets / name).mkdir(parents=True)
        (datasets / name / "segments.json").write_text(content)
    listed = CliRunner().invoke(cli, ["--home", str(tmp_path / "ws"), "dataset", "list"])
    assert listed.exit_code == 0 and "good" in listed.output and "bad" in listed.output and "damaged" in listed.output
    shown = CliRunner().invoke(cli, ["--home", str(tmp_path / "ws"), "dataset", "show", "bad"])
    assert shown.exit_code == 1 and "segments.json' is damaged" in shown.output and "--redo" in shown.output
    assert "Unexpected" not in shown.output


def test_a_dataset_folder_spelt_in_the_other_unicode_form_is_found_under_either(tmp_path):
    """A dataset folder 'Zoë' made on a Mac (NFD: 'e' + a combining diaeresis) is listed as, and
    found by, the one spelling (NFC) typed elsewhere; its folder keeps its name."""
    folder = tmp_path / "ws" / "datasets" / "Zoe\u0308"
    folder.mkdir(parents=True)
    (folder / "segments.json").write_text('{"segments": [], "sources": [], "settings": {}}')
    listed = CliRunner().invoke(cli, ["--home", str(tmp_path / "ws"), "dataset", "list"])
    assert listed.exit_code == 0 and "Zo\u00eb" in listed.output and "Zoe\u0308" not in listed.output
    shown = CliRunner().invoke(cli, ["--home", str(tmp_path / "ws"), "dataset", "show", "Zo\u00eb"])
    assert shown.exit_code == 0, shown.output
    assert [p.name for p in folder.parent.iterdir() if not p.name.startswith(".")] == ["Zoe\u0308"]


def test_cli_prepare_show_edit(tmp_path, demo_files):
    home = str(tmp_path / "ws")
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", home, "-q", "voices", "add", "lj", *map(str, demo_files)])
    assert result.exit_code == 0
    result = runner.invoke(cli, ["--home", home, "-q", "dataset", "prepare", "mini", "--from", "lj"])
    assert result.exit_code == 0, result.output
    assert "Dataset 'mini'" in result.output and "segment lengths" in result.output
    shown = json.loads(runner.invoke(cli, ["--home", home, "dataset", "show", "mini", "--json"]).output)
    assert shown["usable"] >= 2 and shown["untranscribed"] == 0
    edited = runner.invoke(cli, ["--home", home, "dataset", "edit", "mini", "1", "--text", "Hello world."])
    assert edited.exit_code == 0 and "Hello world." in edited.output
    again = runner.invoke(cli, ["--home", home, "-q", "dataset", "prepare", "mini", "--from", str(demo_files[0])])
    assert again.exit_code == 1 and "--redo" in again.output


# --- bad input --------------------------------------------------------------------------------

def _prepare(tmp_path, files, **settings):
    from voxmith.studio import Studio

    return Studio(tmp_path / "ws", device="cpu").prepare_dataset("bad", files, PrepareSettings(**settings))


def test_silence_only_recording(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(22050 * 20, np.float32), 22050)
    with pytest.raises(VoxmithError, match="No speech was found"):
        _prepare(tmp_path, [path])
    assert not (tmp_path / "ws" / "datasets" / "bad" / "segments.json").exists()


def test_one_second_file(tmp_path, demo_audio):
    path = tmp_path / "one.wav"
    rate = demo_audio.sample_rate_hz
    sf.write(path, demo_audio.samples[rate: 2 * rate], rate)
    with pytest.raises(VoxmithError, match="too short to make a dataset"):
        _prepare(tmp_path, [path])


def test_corrupt_file_changes_nothing(tmp_path, demo_files):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    with pytest.raises(VoxmithError, match="broken.wav"):
        _prepare(tmp_path, [demo_files[0], bad])
    assert not (tmp_path / "ws" / "datasets" / "bad").exists()


def test_unknown_language_code(tmp_path, demo_files):
    with pytest.raises(VoxmithError, match="Unknown language code 'klingon'"):
        _prepare(tmp_path, demo_files, language="klingon")


def test_model_that_needs_a_download_fails_fast(tmp_path, demo_files, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
    with pytest.raises(VoxmithError, match="not on this machine"):
        _prepare(tmp_path, demo_files, model="large-v3")


def test_the_same_recording_given_twice_is_sliced_once(tmp_path, demo_files, monkeypatch):
    # Before: a voice whose folder holds one take twice (a WAV and its re-encoding) gave the same
    # lines twice, so they could land in train and in validation.
    import voxmith.asr
    from types import SimpleNamespace

    from voxmith.audio import save_audio
    from voxmith.audio.dsp import resample

    heard = SimpleNamespace(text="Some words.", language="en",
                            segments=[SimpleNamespace(avg_logprob=-0.2, no_speech_prob=0.01)])
    monkeypatch.setattr(voxmith.asr, "get_transcriber",
                        lambda *a, **k: SimpleNamespace(transcribe=lambda *a, **k: heard))
    audio = load_audio(demo_files[0])
    copy = tmp_path / "copy.wav"
    save_audio(copy, resample(audio.samples, audio.sample_rate_hz, 16000), 16000)
    summary = _prepare(tmp_path, [demo_files[0], copy, demo_files[1], demo_files[0]])
    alone = _prepare(tmp_path / "alone", demo_files)
    assert summary["sources"] == 2 and summary["segments"] == alone["segments"]
    assert f"copy.wav was left out: the same recording as {demo_files[0].name}." in summary["note"]
    # Copies are looked for (every source decoded) only when the dataset is made: a resume has them in
    # its record, a run refused for other sources stops first (before, both decoded everything again).
    import voxmith.datasets.prepare

    def decoded_again(paths):
        raise AssertionError("the sources were decoded again to find copies")

    monkeypatch.setattr(voxmith.datasets.prepare, "same_recordings", decoded_again)
    resumed = _prepare(tmp_path, [demo_files[0], copy, demo_files[1], demo_files[0]])
    assert resumed["note"] == summary["note"] and resumed["segments"] == summary["segments"]
    with pytest.raises(VoxmithError, match="already exists"):
        _prepare(tmp_path, [demo_files[1], copy])


def test_unknown_source(tmp_path):
    with pytest.raises(VoxmithError, match="neither a voice"):
        _prepare(tmp_path, ["no-such-voice-or-file"])


def test_missing_whisper_model_fails_before_slicing(tmp_path, demo_files):
    """A --model that is not on the machine is refused before anything is written."""
    home = tmp_path / "ws"
    for model in ("no-such-whisper-model", str(tmp_path / "empty model folder")):
        (tmp_path / "empty model folder").mkdir(exist_ok=True)
        result = CliRunner().invoke(cli, ["--home", str(home), "-q", "dataset", "prepare", "ds", "--from",
                                          str(demo_files[0]), "--model", model])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "model" in result.output.lower()
        assert not (home / "datasets" / "ds").exists()


def test_a_segment_of_a_dataset_prepared_under_the_other_spelling_is_found_by_number(tmp_path):
    """A dataset prepared before names had one Unicode spelling has ids spelt as its folder was
    ('Zoe' + U+0308 + '_00001'); segment '1' of 'Zoë' looked for 'Zo' + U+00EB + '_00001' and was
    "not found" though the error listed it."""
    nfd = "Zoe\u0308"
    folder = tmp_path / "datasets" / nfd
    folder.mkdir(parents=True)
    segment = {"id": f"{nfd}_00001", "file": f"audio/{nfd}_00001.wav", "transcript": "hi", "flags": [],
               "dropped": False, "edited": False, "duration_s": 3.0}
    (folder / "segments.json").write_text(json.dumps({"name": nfd, "segments": [segment], "sources": [],
                                                      "settings": {}}))
    dataset = DatasetLibrary(tmp_path / "datasets").get("Zo\u00eb")
    assert dataset.find_segment(dataset.load(), "1")["id"] == f"{nfd}_00001"
    assert dataset.find_segment(dataset.load(), "Zo\u00eb_00001")["id"] == f"{nfd}_00001"


def test_a_name_spelt_by_two_folders_is_listed_once_and_does_not_stop_the_others(tmp_path):
    """Dataset (and voice) folders 'Zoë' as NFC and as NFD were listed twice, and the clash raised
    out of `speakers()`, which every piper-vc fine-tune walks, for the other datasets too."""
    from voxmith.studio import Studio

    studio = Studio(tmp_path / "ws", device="cpu")
    for name in ("Zo\u00eb", "Zoe\u0308"):
        (studio.workspace.datasets_dir / name).mkdir(parents=True)
        (studio.workspace.datasets_dir / name / "segments.json").write_text(
            json.dumps({"name": name, "segments": [], "sources": [], "settings": {}}))
        (studio.workspace.voices_dir / name).mkdir(parents=True)
    assert studio.datasets.names() == ["Zo\u00eb"] and studio.voices.names() == ["Zo\u00eb"]
    assert studio.training.speakers() == ()


def test_sources_are_decoded_one_at_a_time(tmp_path, demo_files, long_recording, monkeypatch):
    """`dataset prepare --from A --from B --from C` held every recording decoded at once (memory in
    proportion to all of them together); each is now let go before the next is decoded."""
    import gc
    import weakref
    from pathlib import Path
    from types import SimpleNamespace

    import voxmith.asr
    import voxmith.datasets.prepare as prepare_module

    heard = SimpleNamespace(text="Some words.", language="en",
                            segments=[SimpleNamespace(avg_logprob=-0.2, no_speech_prob=0.01)])
    monkeypatch.setattr(voxmith.asr, "get_transcriber",
                        lambda *a, **k: SimpleNamespace(transcribe=lambda *a, **k: heard))
    sources = [long_recording, *demo_files[:2]]
    decoded, held = [], []  # weak references to the sources' samples; how many were alive at each decode
    load = prepare_module.load_audio

    def tracked(path, *args, **kwargs):
        audio = load(path, *args, **kwargs)
        if Path(path).resolve() in {p.resolve() for p in sources}:
            gc.collect()
            held.append(sum(ref() is not None for ref in decoded))
            decoded.append(weakref.ref(audio.samples))
        return audio

    monkeypatch.setattr(prepare_module, "load_audio", tracked)
    summary = _prepare(tmp_path, sources)
    assert summary["sources"] == 3 and summary["segments"] > 3
    assert len(held) >= 3 and held == [0] * len(held)
