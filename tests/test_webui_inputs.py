"""The web UI given what a clumsy or hostile user uploads and types, through the very functions
its buttons call (taken from the built app, no browser): an upload the server has swept, a voice
that exists, settings that are JSON but not an object, a number box emptied, a second book under
the same file name, a deleted result. Each answer is a message in the page's words (gr.Error), never
a TypeError, never a temporary path, and nothing of the user's is changed."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

gr = pytest.importorskip("gradio")

from voxmith.datasets.store import SEGMENTS_FILE  # noqa: E402
from voxmith.errors import VoxmithError  # noqa: E402
from voxmith.studio import Studio  # noqa: E402


@pytest.fixture(scope="module")
def app(tmp_path_factory, demo_files):
    """(studio, callbacks by name) of one built app over a workspace with voice 'alice'."""
    from voxmith.webui.app import build_app

    studio = Studio(tmp_path_factory.mktemp("webui-inputs") / "ws", device="cpu")
    studio.voices.add("alice", demo_files)
    callbacks = {}
    for function in build_app(studio).fns.values():
        callbacks.setdefault(function.name, function.fn)
    return studio, callbacks


@pytest.fixture
def uploads(tmp_path, monkeypatch):
    """Gradio's upload folder for one test: `upload(name, data)` keeps a file as Gradio does,
    <folder>/<hash>/<the user's name>."""
    folder = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(folder))

    def upload(name: str, data: bytes | Path, slot: str = "0f3a") -> str:
        target = folder / slot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            shutil.copyfile(data, target)
        else:
            target.write_bytes(data)
        return str(target)
    upload.folder = folder
    return upload


def refused(function, *args) -> str:
    """The message the page shows for `function(*args)`, unescaped (Gradio renders it as HTML)."""
    import html

    with pytest.raises(gr.Error) as caught:
        function(*args)
    return html.unescape(str(caught.value.message))


def book_inputs(path, seed=-1, pauses=(0.35, 0.8, 2.0), weights="voice"):
    return (path, "alice", "tone", seed, False, weights, *pauses)


def test_an_upload_the_server_swept_is_named_with_the_way_out(app, uploads, demo_files):
    studio, callbacks = app
    swept = uploads("take one.flac", demo_files[0])
    Path(swept).unlink()  # Gradio's hourly sweep; the page still shows the file in its box
    for message in (refused(callbacks["save"], "newvoice", [swept], "create", False),
                    refused(callbacks["run_prepare"], "newset", None, [swept], "en", 2.0, 12.0),
                    refused(callbacks["convert"], swept, "alice", "{}"),
                    refused(callbacks["read"], *book_inputs(swept))):
        assert "'take one.flac' is no longer on the server" in message and "upload it again" in message
        assert str(uploads.folder) not in message
    assert not studio.voices.exists("newvoice") and "newset" not in studio.datasets.names()
    also = uploads("take two.flac", demo_files[1], "77aa")
    Path(also).unlink()
    message = refused(callbacks["save"], "newvoice", [swept, also], "create", False)
    assert "'take one.flac', 'take two.flac' are no longer on the server" in message and "upload them again" in message


def test_creating_a_voice_that_exists_names_the_tabs_choices_not_cli_flags(app, uploads, demo_files):
    studio, callbacks = app
    before = [p.read_bytes() for p in studio.voices.get("alice").clip_paths]
    message = refused(callbacks["save"], "alice", [uploads("new.flac", demo_files[1])], "create", False)
    assert "already exists" in message and "'add clips'" in message and "'replace'" in message
    assert "--append" not in message and "--force" not in message
    assert [p.read_bytes() for p in studio.voices.get("alice").clip_paths] == before


@pytest.mark.parametrize("text", ["[1, 2]", "5", '"warp"', "null"])
def test_settings_that_are_json_but_not_an_object_are_refused(app, uploads, demo_files, tone_engine, text):
    _studio, callbacks = app
    recording = uploads("speech.flac", demo_files[0])
    for message in (refused(callbacks["convert"], recording, "alice", text),
                    refused(callbacks["generate"], "Hello there.", "alice", "tone", 1, -1, text, False)):
        assert "must be a JSON object" in message and "{} keeps the defaults" in message


def test_an_emptied_number_box_is_named(app, uploads, tone_engine):
    _studio, callbacks = app
    book = uploads("story.txt", b"Hello there. How are you?")
    message = refused(callbacks["read"], *book_inputs(book, pauses=(0.35, None, 2.0)))
    assert message == "The 'Paragraph pause (s)' box is empty: enter a number (the default is 0.8)."
    message = refused(callbacks["run_prepare"], "newset", ["alice"], None, "en", None, 12.0)
    assert message == "The 'Min seconds' box is empty: enter a number (the default is 2)."
    message = refused(callbacks["generate"], "Hello there.", "alice", "tone", None, -1, "{}", False)
    assert "'Candidates per sentence' box is empty" in message


def test_dataset_tab_before_anything_is_picked(app):
    _studio, callbacks = app
    message = refused(callbacks["run_prepare"], "newset", [], None, "en", 2.0, 12.0)
    assert message == "Pick voices or upload recordings to make the dataset from."

    class Click:  # a click on the empty table's placeholder row, no dataset chosen
        index = [0, 0]
    assert callbacks["pick"](None, Click()) == (None, "", "")


def test_a_second_book_of_the_same_file_name_keeps_the_first(app, uploads, tone_engine):
    _studio, callbacks = app
    first = callbacks["read"](*book_inputs(uploads("tale.txt", b"Once upon a time. The end.", "aaaa")))
    folder = Path(first[0]).parent
    kept = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    message = refused(callbacks["read"], *book_inputs(uploads("tale.txt", b"Another tale. Other words.", "bbbb")))
    assert "holds another book of the same file name" in message and "rename the file" in message
    assert "voxmith book -o" not in message
    message = refused(callbacks["read"], *book_inputs(uploads("tale.txt", b"Once upon a time. The end.", "aaaa"),
                                                      pauses=(1.0, 0.8, 2.0)))
    assert "read with other settings (pauses): set them back" in message and "voxmith book" not in message
    started = json.loads((folder / "book.json").read_text())["seed"]
    message = refused(callbacks["read"], *book_inputs(uploads("tale.txt", b"Once upon a time. The end.", "aaaa"),
                                                      seed=started + 1))
    assert f"was started with seed {started}: set the seed to {started} or -1" in message
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == kept


def test_a_text_longer_than_one_request_takes_is_sent_to_the_book_tab(app, tone_engine):
    """A pasted novel ran for hours in one request, with one progress bar, the page holding it all;
    the HTTP API's speak refused it already. The limit is the API's, and the text at it is taken."""
    from voxmith.studio.speech import MAX_SPEAK_TEXT_CHARS

    _studio, callbacks = app
    text = "word " * (MAX_SPEAK_TEXT_CHARS // 5 + 1)
    message = refused(callbacks["generate"], text, "alice", "tone", 1, -1, "{}", False)
    assert message.startswith(f"The text is {len(text):,} characters long; Generate takes up to "
                              f"{MAX_SPEAK_TEXT_CHARS:,} at a time. Read a longer text in the Book tab")
    assert "--" not in message and "voxmith" not in message
    # at the limit the text goes on (to the voice's refusal here, before anything is spoken)
    message = refused(callbacks["generate"], text[:MAX_SPEAK_TEXT_CHARS], "gone", "tone", 1, -1, "{}", False)
    assert message.startswith("No voice named 'gone'")


def test_options_the_page_shows_under_its_own_names_are_not_named_as_cli_flags(app, uploads, tone_engine):
    studio, callbacks = app
    generate = callbacks["generate"]
    assert refused(generate, "Hello there.", "alice", "tone", 1, 2 ** 40, "{}", False) == \
        "The seed must be below 4294967296 (or -1 for a random seed)."
    assert refused(generate, "Hello there.", "alice", "tone", 20, -1, "{}", False) == \
        "The number of candidates must be between 1 and 16."
    message = refused(generate, "你好，世界。今天天气很好。", "alice", "tone", 1, -1, "{}", False)
    assert "Use the gpt-sovits engine" in message and message.endswith(": pick it in the Engine list.")
    assert "--engine" not in message and "over HTTP" not in message
    book = uploads("story.txt", b"Hello there. How are you?")
    assert refused(callbacks["read"], *book_inputs(book, pauses=(0.35, 45, 2.0))) == \
        "The paragraph pause must be between 0 and 30 seconds, got 45."
    prepare = callbacks["run_prepare"]
    assert refused(prepare, "newset", ["alice"], None, "en", 0.2, 12.0) == \
        "'Min seconds' must be at least 0.5 and below 'Max seconds'."
    assert refused(prepare, "newset", ["alice"], None, "en", 2.0, 40.0) == \
        "'Max seconds' above 30 is longer than Whisper's window; use 30 or less."
    assert refused(prepare, "newset", ["alice"], None, "en", 29.0, 30.0).endswith(
        "Add longer recordings or lower 'Min seconds'.")
    edited = studio.datasets.path_for("hand-edited")
    edited.mkdir(parents=True)
    (edited / SEGMENTS_FILE).write_text(json.dumps({"name": "hand-edited", "fingerprint": "x", "slicing": {},
                                                    "segments": [{"id": "seg-1", "file": "wavs/seg-1.wav",
                                                                  "duration_s": 2.0, "transcript": "Hi."}]}))
    assert refused(callbacks["apply"], "hand-edited", "seg-1", "  ") == \
        "The new transcript is empty; use 'Drop segment' to remove a segment."


def test_names_the_user_gave_keep_what_looks_like_an_option(app, uploads):
    """Before: 'take (--final).wav' was named 'take.wav' in the page, a file the user does not have."""
    _studio, callbacks = app
    message = refused(callbacks["save"], "finals", [uploads("take (--final).wav", b"")], "create", False)
    assert "Cannot read 'take (--final).wav': the file is empty (0 bytes)." in message
    from voxmith.webui.progress import in_page_words
    assert in_page_words("No voice named 'narrator (--v2)'.") == "No voice named 'narrator (--v2)'."


def test_every_option_the_library_names_in_parentheses_is_one_the_page_drops():
    """The options `(--name)` that studio messages name are listed for the page, which drops only
    those: a new one shows up here."""
    import re

    import voxmith
    from voxmith.webui.progress import OPTIONS_NAMED_IN_PARENTHESES

    source = Path(voxmith.__file__).parent
    named = {option for path in source.rglob("*.py") if "webui" not in path.parts
             for option in re.findall(r"\(--([a-z][a-z0-9-]*)\)", path.read_text(encoding="utf-8"))}
    assert named and named <= set(OPTIONS_NAMED_IN_PARENTHESES), named - set(OPTIONS_NAMED_IN_PARENTHESES)


def test_generate_shows_its_warnings_in_the_pages_words(app, tone_engine):
    """Before: the note said "Use the gpt-sovits engine: --engine gpt-sovits, or engine/model
    'gpt-sovits' over HTTP." where the page's errors say to pick it in the Engine list."""
    _studio, callbacks = app
    text = "Hello there, this is a test. 你好世界 and more English words here to be the main language."
    note = callbacks["generate"](text, "alice", "tone", 1, 7, "{}", False)[2]
    assert "'你好世界'. Use the gpt-sovits engine: pick it in the Engine list." in note
    assert "--engine" not in note and "over HTTP" not in note and "&#x27;" not in note


def test_a_recording_too_long_for_a_voice_clip_is_sent_to_the_dataset_tab(app, uploads, tmp_path):
    studio, callbacks = app
    long_take = tmp_path / "interview.flac"
    sf.write(long_take, np.zeros(31 * 60 * 8000, np.float32), 8000)  # 31 minutes of silence, 0.1 MB
    message = refused(callbacks["save"], "interviewee", [uploads("interview.flac", long_take)], "create", False)
    assert "31 min long, over the 30 min limit" in message
    assert message.endswith("or build a dataset from the recording in the Dataset tab.")
    assert not studio.voices.exists("interviewee")


def test_rerunning_a_result_deleted_since_it_was_clicked(app):
    studio, callbacks = app
    gone = studio.workspace.results_dir / "alice" / "20260101-000000-hello.json"
    message = refused(callbacks["rerun_selected"], str(gone))
    assert "deleted or moved" in message and "NoneType" not in message


def test_a_weights_value_not_from_the_list_is_refused_in_words():
    from voxmith.webui.tab_book import finetune_choice

    assert finetune_choice("run:best:r1").run == "r1"
    for value in ("run:latest", "bogus", "run::r1"):
        with pytest.raises(VoxmithError, match="pick one of the Weights list"):
            finetune_choice(value)


def test_a_bug_in_a_callback_names_the_users_file_not_the_servers_path(uploads, caplog):
    from voxmith.webui.progress import friendly

    kept = Path(uploads("my take.wav", b"RIFF"))

    @friendly
    def broken():
        raise KeyError(f"no entry for {kept}")  # a bug, not a VoxmithError

    message = refused(broken)
    assert message.startswith("Unexpected KeyError:") and "my take.wav" in message and "This is a bug" in message
    assert str(uploads.folder) not in message
    assert any(r.exc_info for r in caplog.records if r.name == "voxmith.webui")  # the console has the traceback


def test_a_choice_gone_since_the_page_listed_it_is_said_with_the_tabs(app, uploads, demo_files):
    """A voice, dataset or run deleted (by the CLI) while the page still lists it."""
    _studio, callbacks = app
    for message in (refused(callbacks["run_analysis"], "gone"),
                    refused(callbacks["convert"], uploads("speech.flac", demo_files[0]), "gone", "{}"),
                    refused(callbacks["apply"], "gone", "seg-1", "text"),
                    refused(callbacks["start_run"], "gone", False)):
        assert "No " in message and "'gone'" in message and "`voxmith" not in message
        assert "Voices tab" in message or "Dataset tab" in message or "Training tab" in message


def test_a_dataset_made_from_other_recordings_is_not_rebuilt_with_a_cli_flag(app):
    studio, callbacks = app
    made = studio.datasets.path_for("made-before")
    made.mkdir(parents=True)
    (made / SEGMENTS_FILE).write_text(json.dumps({"name": "made-before", "fingerprint": "other recordings",
                                                  "slicing": {}, "segments": []}))
    message = refused(callbacks["run_prepare"], "made-before", ["alice"], None, "en", 2.0, 12.0)
    assert "already exists" in message and "--redo to rebuild" not in message
    assert message.endswith("Choose another name (rebuilding it, which loses edited transcripts, is "
                            "`voxmith dataset prepare NAME --redo` on the command line).")


def test_a_recording_with_no_samples_is_refused_before_the_voice_is_enrolled(app, uploads):
    """A header and no audio: what a microphone stopped at once leaves. (Before, the voice was
    enrolled first, a minute on a new voice, and then the recording was found empty.)"""
    _studio, callbacks = app
    empty = io.BytesIO()
    sf.write(empty, np.zeros(0, dtype=np.float32), 48000, format="WAV")
    message = refused(callbacks["convert"], uploads("microphone.wav", empty.getvalue()), "gone", "{}")
    assert message == ("The recording to convert, 'microphone.wav', contains no audio (zero length): "
                       "record or export it again.")


def test_a_recording_declared_over_the_length_bound_is_refused_before_the_voice_is_enrolled(app, uploads, tmp_path,
                                                                                            monkeypatch):
    """3 h 05 min of silence in 0.2 MB: before, the Convert tab began converting it (hours of work)."""
    studio, callbacks = app

    def loaded(*args, **kwargs):
        raise AssertionError("an engine was loaded")

    monkeypatch.setattr(Studio, "engine", loaded)
    talk = tmp_path / "talk.flac"
    with sf.SoundFile(talk, "w", 8000, 1, format="FLAC", subtype="PCM_16") as file:
        for _ in range(185):
            file.write(np.zeros(8000 * 60, np.int16))
    message = refused(callbacks["convert"], uploads("talk.flac", talk), "alice", "{}")
    assert message.startswith("Cannot read 'talk.flac': it is 3 h 05 min long, over the 3 h 00 min limit.")
    assert "convert the parts one by one" in message and str(uploads.folder) not in message


def test_serve_webui_sweeps_uploads_as_the_webui_does(tmp_path, monkeypatch):
    from voxmith.cli.commands_serve import webui_blocks
    from voxmith.webui.server import TEMP_MAX_AGE_S, TEMP_SWEEP_EVERY_S

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # (webui_blocks sets it; put back after)
    blocks = webui_blocks(Studio(tmp_path / "ws", device="cpu"))
    assert blocks.delete_cache == (TEMP_SWEEP_EVERY_S, TEMP_MAX_AGE_S)


def test_runs_that_cannot_be_read_are_rows_and_the_training_tab_still_builds(tmp_path):
    """Two run folders spelling one name ('Zoë' as NFC and NFD), or a config.yaml broken by hand,
    raised while the Runs table was made, so `voxmith webui` did not start; `train list` lists them."""
    from voxmith.webui import tab_training

    studio = Studio(tmp_path / "ws", device="cpu")
    for name in ("Zo\u00eb", "Zoe\u0308", "broken"):
        (studio.training.root / name).mkdir(parents=True)
        (studio.training.root / name / "config.yaml").write_text("x: 1\n")
    with gr.Blocks() as blocks:
        tab_training.build(studio, lambda: [])
    poll = next(f.fn for f in blocks.fns.values() if f.name == "poll")
    text, _, _, table = poll("Zo\u00eb")
    assert [row[0] for row in table] == ["Zo\u00eb", "broken"]  # the name spelt twice is one row
    assert "cannot be read" in table[0][3] and "rename one of them" in table[0][3] and "x" in table[1][3]
    assert "rename one of them" in text  # the picked run: why it cannot be shown


def test_a_run_created_with_a_name_pasted_in_the_other_spelling_is_picked_in_the_list(tmp_path, monkeypatch):
    """A run name pasted from Finder ('Zoe' + U+0308) was set as the Run dropdown's value while its
    choices are the one spelling ('Zo' + U+00EB), so Gradio refused the value on every poll; and a
    job started under one spelling was not found under the other."""
    from tests.tiny_training import tiny_config
    from voxmith.studio.training_jobs import TrainingJobs
    from voxmith.training import TrainingRun
    from voxmith.webui import tab_training

    nfc, nfd = "Zo\u00eb", "Zoe\u0308"
    studio = Studio(tmp_path / "ws", device="cpu")
    monkeypatch.setattr(type(studio.training), "init",
                        lambda self, name, *args, **kwargs: TrainingRun.create(self.root, name, tiny_config(epochs=1)))
    with gr.Blocks() as blocks:
        tab_training.build(studio, lambda: [])
    create_run = next(f.fn for f in blocks.fns.values() if f.name == "create_run")
    text, picked, _ = create_run(nfd, "any dataset", "tone", 1, False, "")
    assert picked["value"] == nfc and picked["choices"] == [nfc] and nfc in text
    gr.Dropdown(choices=picked["choices"]).preprocess(picked["value"])  # raised before

    class Runs:  # only what TrainingJobs asks of the training runs
        def trainer(self, name):
            return None

        def check(self, name):
            return []

        def train(self, name, **kwargs):
            raise VoxmithError("not here")

    jobs = TrainingJobs(Runs())
    started = jobs.start(nfd)
    assert jobs.get(nfc) is started and jobs.get(nfd) is started
