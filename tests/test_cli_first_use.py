"""Rough edges a new user meets on the first day, each fixed and kept fixed here (scripted inputs, fast)."""

from __future__ import annotations

import pytest


@pytest.fixture
def no_scoring_models(monkeypatch):
    """Make loading Whisper, DistillMOS or the speaker encoder fail loudly: the tests below must not need them."""
    import voxmith.asr
    import voxmith.quality
    import voxmith.speaker

    def refuse(*args, **kwargs):
        raise AssertionError("a scoring model was loaded")

    for module, name in ((voxmith.asr, "get_transcriber"), (voxmith.quality, "get_naturalness_model"),
                         (voxmith.speaker, "get_speaker_encoder")):
        monkeypatch.setattr(module, name, refuse)


def test_eval_refuses_an_unreadable_file_before_loading_models(run, tmp_path, demo_files, no_scoring_models):
    # Before: a typo in the file name was reported after a minute or two of loading the models.
    text_file = tmp_path / "notes.wav"
    text_file.write_text("not audio")
    for bad, why in ((tmp_path / "missing.wav", "file not found"), (text_file, "notes.wav")):
        result = run("eval", "--reference", str(demo_files[0]), str(demo_files[1]), str(bad))
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: ") and why in result.output
        assert "Traceback" not in result.output


def test_result_names_fold_accents_instead_of_splitting_words():
    from voxmith.studio.speech import slugify

    # Before: "small bóok" named its book folder "small-b-ok".
    assert slugify("small bóok") == "small-book"
    assert slugify("Café déjà vu, naïve Zoë!") == "cafe-deja-vu-naive-zoe"
    assert slugify("Straße, Ærø, Łódź") == "strasse-aero-lodz"
    assert slugify("你好") == "speech"


def test_voices_add_takes_a_folder_of_clips(run, tmp_path, demo_files, no_scoring_models):
    # Before: `voxmith voices add alice ~/clips/` answered "File '~/clips' is a directory."
    import shutil

    folder = tmp_path / "my clips"
    (folder / "older").mkdir(parents=True)
    for clip in demo_files:
        shutil.copy(clip, folder / clip.name)
    (folder / "notes.txt").write_text("recorded in the kitchen")  # not audio: not taken
    shutil.copy(demo_files[0], folder / "older" / "old.flac")  # subfolders are not searched
    result = run("voices", "add", "alice", str(folder))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (run.home / "voices" / "alice").iterdir() if p.suffix == ".flac") == \
        sorted(p.name for p in demo_files)
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = run("voices", "add", "bob", str(empty))
    assert refused.exit_code == 1 and refused.output.startswith("Error: Folder") and "no audio files" in refused.output
    assert not (run.home / "voices" / "bob").exists()


def test_a_busy_run_is_refused_before_asking_or_explaining(run, monkeypatch):
    # Before: a second `train run` printed "While training: type save, eval or quit..." (and with
    # --force-restart asked whether to delete the checkpoints) and only then said the run was busy.
    from voxmith.studio.training_runs import TrainingRuns
    from voxmith.training.lock import LockHolder

    monkeypatch.setattr(TrainingRuns, "trainer",
                        lambda self, name: LockHolder(4242, "box", "2026-11-28T09:00:00", "voxmith train run ft"))
    for extra in ((), ("--force-restart",)):
        result = run("train", "run", "ft", *extra, input="y\n")
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error: Run 'ft' is already being trained by process 4242"), result.output
        assert "While training" not in result.output and "Continue?" not in result.output


def test_a_recording_given_as_text_is_refused_in_words(run, tmp_path, demo_files, monkeypatch):
    # Before: `speak --text-file clip.wav` read the WAV as Latin-1, set out to say 2,000 "sentences"
    # and failed with "Unexpected ValueError: embedded null character. This is a bug in voxmith".
    import soundfile as sf

    from voxmith.text.files import decode_text_file

    wav = tmp_path / "take.wav"
    audio, rate = sf.read(demo_files[0])
    sf.write(wav, audio[:rate], rate)
    result = run("speak", "-v", "demo", "--text-file", str(wav))
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and "take.wav' is not a text file: it looks like a WAV recording" \
        in result.output
    book = tmp_path / "novel.md"
    book.write_bytes(wav.read_bytes())
    run("voices", "add", "demo", *map(str, demo_files))
    from voxmith.studio import Studio

    def no_enrolling(*args, **kwargs):  # an unreadable book is refused before the voice is prepared
        raise AssertionError("the voice was prepared for a book that cannot be read")

    monkeypatch.setattr(Studio, "_voice_or_refs", no_enrolling)
    refused = run("book", "-v", "demo", str(book))
    assert refused.exit_code == 1 and "'novel.md' is not a text file" in refused.output, refused.output
    assert "bug" not in result.output + refused.output
    # text in the encodings that are read stays readable
    for data in ("Grüße, naïve café.".encode("utf-16"), "Grüße.".encode("cp1252"), "Plain.".encode()):
        assert decode_text_file(data, "t.txt")[0].startswith(("Grüße", "Plain"))


def test_speaking_from_reference_clips_says_it_enrolls_them(tmp_path, demo_files, tone_engine):
    # Before: `speak --ref clip.wav` went straight into minutes of "analysing clips", "choosing warp",
    # ... with no line saying the clips were being enrolled (a voice's first use says so).
    from voxmith.studio import Studio
    from voxmith.studio.speech import SpeakRequest

    studio = Studio(tmp_path / "ws", device="cpu")
    for expected in ("first use: enrolling", "cached"):
        events = []
        studio.speak(SpeakRequest("Hello.", refs=[str(demo_files[0])], engine="tone", rank=False, seed=1),
                     progress=events.append)
        prepared = [e for e in events if e.stage == "preparing the reference clips for tone"]
        assert [e.detail for e in prepared] == [expected]


def test_undecodable_recordings_are_explained_without_ffmpeg_error_numbers(tmp_path):
    # Before: converting a text file answered "it could not be decoded ([Errno 1094995529] Invalid
    # data found when processing input: 'notes.wav')".
    from voxmith.audio.stream import read_blocks
    from voxmith.errors import AudioError

    notes = tmp_path / "notes.wav"
    notes.write_text("not a recording, just words")
    with pytest.raises(AudioError) as refused:
        next(read_blocks(notes, 16000))
    message = str(refused.value)
    assert "Errno" not in message and "Invalid data found" in message and "corrupt or not contain audio" in message


def test_a_dataset_being_prepared_is_not_prepared_twice_at_once(run, demo_files, no_scoring_models):
    # Before: two `dataset prepare` of one name both sliced and transcribed into the same files.
    from voxmith.fsutil import exclusive_lock

    datasets = run.home / "datasets"
    with exclusive_lock(datasets / ".alice-ds.lock") as held:  # as the first process holds it
        assert held
        result = run("dataset", "prepare", "alice-ds", "--from", str(demo_files[0]))
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: Dataset 'alice-ds' is being prepared or edited by another voxmith process")
    assert not (datasets / "alice-ds").exists()


def test_a_run_without_validation_lines_says_it_has_no_best_checkpoint(run, monkeypatch):
    # Before: a dataset of under 10 segments (no validation lines) made a run that `train show`
    # called "not validated yet" forever, and `voices use --checkpoint best` (the README's example)
    # was refused only at the end.
    from voxmith.studio.training_runs import TrainingRuns

    monkeypatch.setattr(TrainingRuns, "lines", lambda self, dataset: ([object()] * 5, []))
    created = run("train", "init", "small-ft", "--dataset", "small-ds")
    assert created.exit_code == 0, created.output
    assert "no validation lines" in created.output and "--checkpoint latest" in created.output
    shown = run("train", "show", "small-ft")
    assert shown.exit_code == 0, shown.output
    assert "never validated (no validation lines; no best checkpoint)" in shown.output


def test_openai_speed_out_of_range_names_the_speeds_to_send():
    # Before: "speed 0.3 is outside what the piper-vc engine can do (Setting 'length_scale' must be
    # between 0.5 and 2.0, got 3.3333.)": the bounds of a setting the client never sent.
    from voxmith.serve.errors import ApiError
    from voxmith.serve.openai_api import speed_settings

    for speed in (0.3, 4.0):
        with pytest.raises(ApiError) as refused:
            speed_settings("piper-vc", speed)
        assert refused.value.message == f"speed {speed} is outside what the piper-vc engine can do: send a " \
                                        "speed from 0.5 to 2."
    assert speed_settings("piper-vc", 2.0) == {"length_scale": 0.5}


def test_voices_show_names_every_unusable_clip_dropped_in_by_hand(run, demo_files, no_scoring_models):
    # Before: the first unreadable file ended `voices show` with a bare "Cannot read ..." that did
    # not say it was in the voice's folder, nor what to do, nor whether other files were wrong too.
    import shutil

    folder = run.home / "voices" / "handmade"
    folder.mkdir(parents=True)
    shutil.copy(demo_files[0], folder / "good.flac")
    (folder / "notes.wav").write_text("not audio")
    (folder / "empty.mp3").write_bytes(b"")
    result = run("voices", "show", "handmade")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: Voice 'handmade' has clips that cannot be used; remove or replace them")
    assert "notes.wav" in result.output and "empty.mp3" in result.output and "good.flac" not in result.output
