"""Ordinary mistakes and small promises of the CLI, each checked the way a user meets it.

Heavy work (enrolling, training) is replaced by stand-ins where only the CLI's own logic is tested.
"""

from __future__ import annotations

import inspect
import re
import shutil
import time
from types import SimpleNamespace

import pytest

from voxmith.errors import VoxmithError


# --- train -------------------------------------------------------------------------------------

def test_train_init_defaults_to_piper_vc(run, monkeypatch):
    from voxmith.engines.registry import DEFAULT_ENGINE
    from voxmith.errors import VoxmithError
    from voxmith.studio.training_runs import TrainingRuns

    assert DEFAULT_ENGINE == "piper-vc"
    assert inspect.signature(TrainingRuns.init).parameters["engine"].default == DEFAULT_ENGINE
    seen = {}

    def fake_init(self, name, dataset, engine, *args, **kwargs):
        seen["engine"] = engine
        raise VoxmithError("stop here")

    monkeypatch.setattr(TrainingRuns, "init", fake_init)
    result = run("train", "init", "r", "--dataset", "d")
    assert result.exit_code == 1 and seen == {"engine": "piper-vc"}


def test_lr_help_states_each_engines_default():
    from voxmith.cli.commands_train import LR_HELP
    from voxmith.engines import engine_class
    from voxmith.training.config import ScheduleConfig

    stated = dict((engine, float(value)) for value, engine in re.findall(r"([0-9.e-]+) for ([a-z-]+)", LR_HELP))
    for engine in ("piper-vc", "tortoise", "gpt-sovits"):
        actual = engine_class(engine).training_defaults.get("schedule", {}).get(
            "learning_rate", ScheduleConfig().learning_rate)
        assert stated[engine] == actual, engine


def test_interrupted_train_run_exits_130(run, monkeypatch):
    from voxmith.studio.training_runs import TrainingRuns
    from voxmith.training import TrainingResult

    monkeypatch.setattr(TrainingRuns, "refuse_if_busy", lambda self, name: None)  # no run folder here
    monkeypatch.setattr(TrainingRuns, "train", lambda self, name, **kw: TrainingResult(4, "interrupted", None, None))
    result = run("train", "run", "my run")
    assert result.exit_code == 130, result.output
    assert "interrupted at step 4" in result.output
    assert "Resume with: voxmith train run 'my run'" in result.output
    monkeypatch.setattr(TrainingRuns, "train", lambda self, name, **kw: TrainingResult(9, "quit", None, 4))
    assert run("train", "run", "r").exit_code == 0  # a "quit" typed by the user is no interruption


# --- demo --------------------------------------------------------------------------------------

def test_demo_time_includes_preparing_the_voice(run, monkeypatch, tmp_path):
    """The sidecar times synthesis only; the demo's figure must include the enrollment before it."""
    from voxmith.cli import commands_misc
    from voxmith.studio import Studio

    monkeypatch.setattr(Studio, "import_demo_voice",
                        lambda self, progress=None: SimpleNamespace(name="demo", path=tmp_path))
    monkeypatch.setattr(Studio, "analyse_voice", lambda self, name, progress=None: None)
    monkeypatch.setattr(commands_misc, "format_report", lambda report: "(report)")

    def slow_speak(self, request, progress=None):
        time.sleep(0.6)  # "enrolling"
        return SimpleNamespace(duration_s=2.0, path=tmp_path / "x.wav", record=SimpleNamespace(total_s=0.1))

    monkeypatch.setattr(Studio, "speak", slow_speak)
    result = run("demo")
    assert result.exit_code == 0, result.output
    reported = float(re.search(r"Spoke 2\.0 s in ([0-9.]+) s", result.output).group(1))
    assert reported >= 0.6
    assert "preparing the voice, then 0.1 s speaking" in result.output


# --- quoting -----------------------------------------------------------------------------------

def test_suggested_commands_quote_names_with_spaces(run):
    result = run("voices", "show", "my voice")
    assert result.exit_code == 1 and "voxmith voices add 'my voice' CLIP..." in result.output
    result = run("train", "run", "my run")
    assert result.exit_code == 1 and "voxmith train init 'my run' --dataset NAME" in result.output
    result = run("dataset", "show", "my data")
    assert result.exit_code == 1 and "voxmith dataset prepare 'my data' --from" in result.output


# --- the five "Unexpected ... this is a bug" mistakes --------------------------------------------

@pytest.fixture
def tone_voice(run, tone_engine, demo_files):
    """A workspace with voice 'v' and the instant tone engine (no enrollment to wait for)."""
    assert run("voices", "add", "v", *map(str, demo_files)).exit_code == 0
    return run


def test_seed_minus_one_is_random_in_cli_and_api(tone_voice, tmp_path):
    import json

    from voxmith.studio import Studio
    from voxmith.studio.speech import SpeakRequest

    result = tone_voice("speak", "-e", "tone", "-v", "v", "--no-rank", "--seed", "-1", "-o",
                        str(tmp_path / "a.wav"), "three short words")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a.json").read_text())["seed"] >= 0

    studio = Studio(tone_voice.home, device="cpu")
    seeds = {studio.speak(SpeakRequest("three short words", voice="v", engine="tone", seed=-1,
                                       rank=False)).sidecar["seed"] for _ in range(3)}
    assert all(s >= 0 for s in seeds) and len(seeds) > 1  # random each time
    huge = tone_voice("speak", "-e", "tone", "-v", "v", "--seed", str(2 ** 40), "hello")
    assert huge.exit_code == 1 and "seed (--seed) must be below" in huge.output


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-16"])
def test_text_file_in_other_encodings_is_read_with_a_note(tone_voice, tmp_path, encoding):
    import json

    text = "Caf\u00e9 na\u00efve, a gar\u00e7on's r\u00e9sum\u00e9." + \
        (" \u201cQuoted\u201d \u2013 fine." if encoding == "cp1252" else "")
    (tmp_path / "t.txt").write_bytes(text.encode(encoding))
    result = tone_voice("speak", "-e", "tone", "-v", "v", "--no-rank", "--seed", "1", "--text-file",
                        str(tmp_path / "t.txt"), "-o", str(tmp_path / "t.wav"))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "t.json").read_text())["text"] == text
    if encoding == "utf-16":  # a byte-order mark says what it is: nothing to warn about
        assert "is not UTF-8" not in result.output
    else:
        assert "is not UTF-8; read it as" in result.output


def test_an_endless_or_huge_text_file_is_refused_without_reading_it_all(tone_voice, monkeypatch):
    """`--text-file /dev/zero` (or a disk image given by mistake) was read whole into memory: the
    process was killed for memory before any message. Reading stops past the limit."""
    from voxmith.text import files

    monkeypatch.setattr(files, "MAX_TEXT_FILE_BYTES", 1 << 20)
    result = tone_voice("speak", "-e", "tone", "-v", "v", "--text-file", "/dev/zero")
    assert result.exit_code == 1 and "'/dev/zero' is over 1 MB, too big for a text file" in result.output
    piped = tone_voice("speak", "-e", "tone", "-v", "v", "--text-file", "-", input=b"word " * 300_000)
    assert piped.exit_code == 1 and "'standard input' is over 1 MB" in piped.output


def test_a_text_file_longer_than_a_web_request_is_spoken_with_a_note_about_books(tone_voice, tmp_path, monkeypatch):
    """`speak --text-file` is not held to the web UI's and HTTP API's limit (it resumes sentence by
    sentence); over it, a note says what that means and names `voxmith book`."""
    from voxmith.studio import speech

    monkeypatch.setattr(speech, "MAX_SPEAK_TEXT_CHARS", 20)
    (tmp_path / "t.txt").write_text("A text a little longer than twenty characters.")
    result = tone_voice("speak", "-e", "tone", "-v", "v", "--no-rank", "--text-file", str(tmp_path / "t.txt"),
                        "-o", str(tmp_path / "t.wav"))
    assert result.exit_code == 0, result.output
    assert "Note: the text is 46 characters long, more than the web UI or the HTTP API takes in one request (20)" \
        in result.output and "`voxmith book`" in result.output
    assert (tmp_path / "t.wav").is_file()
    short = tone_voice("speak", "-e", "tone", "-v", "v", "--no-rank", "Twenty or fewer.", "-o", str(tmp_path / "s.wav"))
    assert short.exit_code == 0 and "Note:" not in short.output


def test_a_huge_book_file_is_refused_without_reading_it_all(tmp_path, monkeypatch):
    """A book's text is read with the same bound (it was read whole first: a disk image named
    .txt by mistake would fill memory before any message)."""
    from voxmith.studio.book import read_chapters
    from voxmith.text import files
    from voxmith.text.book import PauseSettings

    monkeypatch.setattr(files, "MAX_TEXT_FILE_BYTES", 1 << 20)
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"Word. " * 200_000)
    with pytest.raises(VoxmithError, match="'huge.txt' is over 1 MB, too big for a text file"):
        read_chapters(huge, PauseSettings())
    small = tmp_path / "small.txt"
    small.write_text("Chapter 1\n\nOne sentence here.\n", encoding="utf-8")
    assert read_chapters(small, PauseSettings())


def test_decode_text_prefers_utf8_and_never_fails():
    from voxmith.text.files import decode_text

    assert decode_text("na\u00efve \u2014 ok".encode("utf-8")) == ("na\u00efve \u2014 ok", "utf-8")
    assert decode_text(b"\xef\xbb\xbfhi") == ("hi", "utf-8-sig")
    assert decode_text("\u201chi\u201d".encode("cp1252")) == ("\u201chi\u201d", "cp1252")
    assert decode_text(b"\x81\x8d") == ("\x81\x8d", "latin-1")  # undefined in cp1252


@pytest.mark.parametrize("content", [b"[1, 2]", b'{"text": "hi"}', b"not json at all", b"RIFF\x00\xff\xfeWAVE",
                                     b'{"text": "hi", "engine": {"name": "piper-vc", "version": "5"}, "seed": 1}'])
def test_reproduce_refuses_what_is_not_a_sidecar(run, tmp_path, content):
    path = tmp_path / "thing.json"
    path.write_bytes(content)
    result = run("reproduce", str(path))
    assert result.exit_code == 1, result.output
    assert "is not a voxmith result sidecar" in result.output and "Unexpected" not in result.output


def test_read_only_voice_cache_still_speaks_to_a_writable_output(tone_voice, tmp_path, monkeypatch, caplog):
    """As in a read-only workspace: every cache write fails (patched: the tests may run as root,
    who can write anywhere); `speak -o` works anyway and says that nothing was cached."""
    import errno

    from voxmith.studio import conditioning

    def refuse(path, data):
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(conditioning, "atomic_write_bytes", refuse)
    out = tmp_path / "out" / "x.wav"
    result = tone_voice("speak", "-e", "tone", "-v", "v", "--no-rank", "-o", str(out), "three short words")
    assert result.exit_code == 0, result.output
    assert out.exists() and out.with_suffix(".json").exists()
    # The CLI logs warnings to stderr (logging.basicConfig); under pytest the log is captured instead.
    notes = [r.getMessage() for r in caplog.records if "cannot write the cache" in r.getMessage()]
    assert len(notes) == 1 and "computed without caching" in notes[0]
    assert not list((tone_voice.home / "voices" / "v" / ".cache").rglob("*.npz"))


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root writes to read-only folders")
def test_read_only_voice_folder_really(tone_voice, tmp_path):
    voice_dir = tone_voice.home / "voices" / "v"
    for folder in (voice_dir, voice_dir / ".cache"):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o555)
    try:
        result = tone_voice("speak", "-e", "tone", "-v", "v", "--no-rank", "-o", str(tmp_path / "x.wav"), "hi there")
        assert result.exit_code == 0, result.output
        assert (tmp_path / "x.wav").exists()
    finally:
        for folder in (voice_dir, voice_dir / ".cache"):
            folder.chmod(0o755)


@pytest.mark.parametrize("err_no,advice", [(30, "read-only"), (13, "permissions"), (28, "disk is full"),
                                           (36, "too long"), (20, "not a folder")])
def test_file_system_refusals_are_messages(run, monkeypatch, demo_files, err_no, advice):
    from voxmith.studio.voices import VoiceLibrary

    def refuse(self, name, files, **kwargs):
        raise OSError(err_no, "refused", str(run.home / "voices" / name))

    monkeypatch.setattr(VoiceLibrary, "add", refuse)
    result = run("voices", "add", "v", str(demo_files[0]))
    assert result.exit_code == 1
    assert advice in result.output and "voices/v" in result.output
    assert "Unexpected" not in result.output and "Traceback" not in result.output


def test_webui_on_a_taken_port_suggests_another(run):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = run("webui", "--listen", f"127.0.0.1:{port}")
    assert result.exit_code == 1, result.output
    assert f"Port {port} on 127.0.0.1 is already in use" in result.output
    suggested = int(re.search(r"--listen 127\.0\.0\.1:(\d+)", result.output).group(1))
    assert suggested > port and "Unexpected" not in result.output


def test_torchrun_workers_leave_without_interpreter_shutdown(run, monkeypatch):
    """Under torchrun `train run` ends through exit_worker (no shutdown to race gloo's threads),
    with the same exit status as in one process."""
    from voxmith.studio.training_runs import TrainingRuns
    from voxmith.training import TrainingResult, distributed

    left = []

    def fake_exit(status=0):
        left.append(status)
        raise SystemExit(status)

    monkeypatch.setattr(distributed, "exit_worker", fake_exit)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(TrainingRuns, "refuse_if_busy", lambda self, name: None)  # no run folder here
    for rank, stopped, status in (("1", "finished", 0), ("0", "finished", 0), ("0", "interrupted", 130)):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setattr(TrainingRuns, "train",
                            lambda self, name, stopped=stopped, **kw: TrainingResult(5, stopped, None, None))
        assert run("train", "run", "r").exit_code == status
    assert left == [0, 0, 130]


def test_exit_worker_flushes_and_exits_with_the_status():
    import subprocess
    import sys

    code = ("import sys; from voxmith.training.distributed import exit_worker; "
            "print('out', end=''); sys.stderr.write('err'); exit_worker(3)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": str(__import__("pathlib").Path(
                              __file__).resolve().parents[1] / "src")})
    assert (proc.returncode, proc.stdout, proc.stderr) == (3, "out", "err")


def test_engine_declared_options_become_settings(run, monkeypatch):
    """`--preset` is tortoise's own option (Engine.options), not one of the generic speak."""
    from voxmith.studio import Studio

    seen = {}

    def fake_speak(self, request, progress=None):
        seen.update(request.settings)
        raise VoxmithError("stop here")

    monkeypatch.setattr(Studio, "speak", fake_speak)
    result = run("speak", "hello there", "--voice", "v", "--engine", "tortoise", "--preset", "fast")
    assert "stop here" in result.output and seen == {"preset": "fast"}
    result = run("speak", "hello there", "--voice", "v", "--preset", "fast")
    assert result.exit_code == 1 and "not an option of speak or of the piper-vc engine" in result.output
    result = run("speak", "hello there", "--voice", "v", "--engine", "tortoise", "--preset=slow")
    assert result.exit_code == 1 and "must be one of ultra_fast" in result.output
    engines = run("engines")
    assert "speak --preset" in engines.output


def test_the_engines_own_take_scores_are_kept(tmp_path, tone_engine, demo_files):
    """Each take of the sidecar keeps what the engine scored it (tortoise: CLVP/CVVP)."""
    import json

    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine
    from voxmith.studio import Studio
    from voxmith.studio.speech import SpeakRequest

    class ScoredTone(tone_engine):
        name = "scored-tone"

        def synthesize(self, text, conditioning, settings, *, seed, candidates=1, progress=None):
            takes = super().synthesize(text, conditioning, settings, seed=seed, candidates=candidates)
            for k, take in enumerate(takes):
                take.scores = {"clvp": 0.5 + k}
            return takes

    register_engine("scored-tone", ScoredTone)
    try:
        studio = Studio(tmp_path / "ws", device="cpu")
        studio.voices.add("demo", demo_files)
        result = studio.speak(SpeakRequest("Scores stay.", voice="demo", engine="scored-tone", seed=1,
                                           candidates=2, rank=False))
    finally:
        unregister_engine("scored-tone")
    takes = json.loads(result.sidecar_path.read_text())["sentences"][0]["takes"]
    assert [t["engine_scores"]["clvp"] for t in takes] == [0.5, 1.5] and takes[0]["scores"] is None


def test_out_of_range_retries_and_max_wer_are_refused_before_any_work(run, tmp_path):
    for args in (["speak", "-v", "nobody", "hi", "--retries", "1000000"],
                 ["speak", "-v", "nobody", "hi", "--max-wer", "2"],
                 ["book", "-v", "nobody", str(tmp_path / "b.md"), "--retries", "-1"]):
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert "range" in result.output and "Traceback" not in result.output


def test_a_fine_tune_check_that_turned_the_network_off_says_so():
    from voxmith.cli.commands_voices import format_finetune_check
    check = {"step": 7, "errors": 9, "words": 53, "base_errors": 5, "reduced": ["network 1 -> 0.5: ...", "network 0.5 -> 0: ..."],
             "strengths": {"network": 0.0, "ridge": 1.0, "statistics": 1.0}}
    assert "network is off" in format_finetune_check(check)
    check["strengths"]["network"], check["reduced"] = 0.5, ["network 1 -> 0.5: ..."]
    assert "network is off" not in format_finetune_check(check)


# --- eval --------------------------------------------------------------------------------------

def test_eval_table_keeps_the_extension_of_long_file_names(run, monkeypatch):
    # Before: names were cut at 40 characters, so take-a.wav and take-a.mp3 of a long name looked alike.
    from voxmith.cli.commands_speak import fit_name
    from voxmith.studio import Studio

    long_wav = "20261122-101500-dr-smith-paid-five-dollars-for-three-apples.wav"
    long_mp3 = long_wav[:-4] + ".mp3"
    for name in (long_wav, long_mp3, "x" * 80 + ".flac"):
        short = fit_name(name, 40)
        assert len(short) == 40 and short.endswith(name[name.rindex("."):]) and short[:10] == name[:10]
    assert fit_name(long_wav, 40) != fit_name(long_mp3, 40)
    assert fit_name("short.wav", 40) == "short.wav"
    assert fit_name("no-extension-" * 5, 40).startswith("no-extension-") and len(fit_name("n" * 60, 40)) == 40

    def fake_evaluate(self, files, **kwargs):
        return [{"file": f, "duration_s": 1.0, "similarity": 0.5, "wer": None, "naturalness_mos": 3.0,
                 "transcript": "hi"} for f in files]

    monkeypatch.setattr(Studio, "evaluate", fake_evaluate)
    result = run("eval", "--reference", "ref.wav", long_wav, long_mp3)
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()[1:]
    assert rows[0].split()[0].endswith(".wav") and rows[1].split()[0].endswith(".mp3")


# --- voices ------------------------------------------------------------------------------------

def test_removing_a_voice_that_does_not_exist_names_the_voices_not_voices_add(run, demo_files):
    # Before: `voices remove nobody` ended with "Create it with `voxmith voices add nobody CLIP...`".
    refused = run("voices", "remove", "-y", "alice")
    assert refused.exit_code == 1 and "No voice named 'alice'" in refused.output
    assert "no voices yet" in refused.output and "voices add" not in refused.output
    assert run("voices", "add", "alice", *map(str, demo_files)).exit_code == 0
    assert run("voices", "add", "bob", str(demo_files[0])).exit_code == 0
    for typo, hint in (("alcie", "Did you mean 'alice'?"), ("Bob", "Did you mean 'bob'?"), ("nobody", "")):
        refused = run("voices", "remove", typo)  # asks nothing: refused before the confirmation
        assert refused.exit_code == 1, refused.output
        assert f"No voice named '{typo}'" in refused.output and "Voices: alice, bob." in refused.output
        assert hint in refused.output and "voices add" not in refused.output and "Traceback" not in refused.output
    assert sorted(p.name for p in (run.home / "voices").iterdir()) == ["alice", "bob"]
    # speak and show still say how to create a voice that is not there
    shown = run("voices", "show", "alcie")
    assert "Did you mean 'alice'?" in shown.output and "voxmith voices add alcie" in shown.output


NFC, NFD = "Zo\u00eb", "Zoe\u0308"  # 'Zoë' as one character, and as 'e' + a combining diaeresis


def test_a_voice_name_typed_in_either_unicode_form_is_one_voice(run, demo_files):
    """'Zoë' typed on a Mac (NFD) and on Linux (NFC) made two voice folders that look the same in
    every listing; each spelling now means the one voice, kept under one spelling."""
    assert run("voices", "add", NFD, str(demo_files[0])).exit_code == 0
    twin = run("voices", "add", NFC, str(demo_files[1]))
    assert twin.exit_code == 1 and f"Voice '{NFC}' already exists (1 clips)" in twin.output, twin.output
    assert run("voices", "add", NFC, str(demo_files[1]), "--append").exit_code == 0
    assert [p.name for p in (run.home / "voices").iterdir()] == [NFC]
    assert run("voices", "list").output.split()[:2] == [NFC, "2"]


def test_a_voice_folder_spelt_the_other_way_is_found_and_never_renamed(run, demo_files):
    """A folder made by hand (or by voxmith before names had one spelling) under the NFD spelling is
    the voice of either spelling; a second folder spelling the same name is refused, not guessed."""
    voices = run.home / "voices"
    (voices / NFD).mkdir(parents=True)
    shutil.copy(demo_files[0], voices / NFD)
    appended = run("voices", "add", NFC, str(demo_files[1]), "--append")
    assert appended.exit_code == 0, appended.output
    assert [p.name for p in voices.iterdir()] == [NFD] and len(list((voices / NFD).iterdir())) == 3  # + voice.json
    assert run("voices", "list").output.split()[:2] == [NFC, "2"]
    (voices / NFC).mkdir()
    shutil.copy(demo_files[0], voices / NFC)
    refused = run("voices", "remove", "-y", NFC)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "'Zo\\xeb'" in refused.output and "'Zoe\\u0308'" in refused.output  # how each is stored
    assert "rename one of them" in refused.output
    assert sorted(p.name for p in voices.iterdir()) == sorted([NFC, NFD])



# --- book --------------------------------------------------------------------------------------

def test_ctrl_c_in_a_book_says_interrupted_once_and_exits_130(run, monkeypatch, tmp_path):
    from voxmith.studio import Studio

    def interrupted(self, request, redo=None, progress=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(Studio, "book", interrupted)
    book = tmp_path / "story.txt"
    book.write_text("Once upon a time.", encoding="utf-8")
    result = run("book", "-v", "anyone", str(book))
    assert result.exit_code == 130, result.output
    assert result.output.count("Interrupted") == 1 and "run the same command again to resume" in result.output



def test_global_flags_may_come_after_the_command(tmp_path, demo_files):
    # Before: `voxmith voices add alice clip.flac -q` answered "No such option '-q'".
    from click.testing import CliRunner

    from voxmith.cli.main import cli

    home = str(tmp_path / "home")
    added = CliRunner().invoke(cli, ["--home", home, "voices", "add", "alice", str(demo_files[0]), "-q"])
    assert added.exit_code == 0, added.output
    assert "checking clips" not in added.output  # quiet: no progress bar
    listed = CliRunner().invoke(cli, ["--home", home, "voices", "list", "--debug"])
    assert listed.exit_code == 0 and "alice" in listed.output
    # ...and the options with a value: `--device cpu` after `speak` was read as the text "--device"
    # and an unknown option 'cpu'.
    for late in (["--home", home], [f"--home={home}"]):
        listed = CliRunner().invoke(cli, ["voices", "list", *late])
        assert listed.exit_code == 0 and "alice" in listed.output, listed.output
    wrong = CliRunner().invoke(cli, ["--home", home, "info", "--device", "tpu"])
    assert wrong.exit_code == 1 and "Unknown device 'tpu'" in wrong.output


def test_hoisting_global_options_leaves_the_rest_in_order():
    from voxmith.cli.main import hoist_global_options

    assert hoist_global_options(["speak", "-v", "a", "hi", "--device", "cpu", "-q", "--", "--home"]) == \
        ["--device", "cpu", "-q", "speak", "-v", "a", "hi", "--", "--home"]
    assert hoist_global_options(["speak", "hi", "--device"]) == ["speak", "hi", "--device"]  # no value: click says so


def _drop_a_ctrl_c():
    """What Python does with a Ctrl-C raised in a callback from C (llvmlite's): hands it to
    sys.unraisablehook instead of raising it."""
    import sys

    sys.unraisablehook(SimpleNamespace(exc_type=KeyboardInterrupt, exc_value=KeyboardInterrupt(),
                                       exc_traceback=None, err_msg=None, object=None))


def test_a_ctrl_c_dropped_after_the_last_progress_event_still_exits_130(run, monkeypatch):
    # Before: with no progress event after it, the dropped Ctrl-C vanished (exit 0), and stayed
    # pending in the process.
    from voxmith.studio.voices import VoiceLibrary

    listed = VoiceLibrary.list

    def list_then_ctrl_c(self):
        _drop_a_ctrl_c()
        return listed(self)

    monkeypatch.setattr(VoiceLibrary, "list", list_then_ctrl_c)
    result = run("voices", "list")
    assert result.exit_code == 130 and result.output.count("Interrupted") == 1, result.output
    monkeypatch.setattr(VoiceLibrary, "list", listed)
    assert run("voices", "list").exit_code == 0  # it was said once, not left for the next command


def test_a_ctrl_c_dropped_before_a_command_does_not_stop_it(run):
    from voxmith.cli import interrupts

    interrupts.install()
    _drop_a_ctrl_c()  # left by an earlier command in the same process (as in tests)
    result = run("voices", "list")
    assert result.exit_code == 0, result.output


def test_an_output_path_through_a_file_or_too_long_is_a_message(tone_voice, tmp_path):
    """`-o clip.flac/x.wav` and a 300-character name ended in 'Unexpected NotADirectoryError' /
    'OSError: File name too long ... This is a bug in voxmith'."""
    (tmp_path / "clip.flac").write_bytes(b"a file")
    for out, advice in ((tmp_path / "clip.flac" / "x.wav", "is a file, not a folder"),
                        (tmp_path / ("x" * 300 + ".wav"), "too long")):
        result = tone_voice("speak", "-e", "tone", "-v", "v", "--no-rank", "-o", str(out), "hello")
        assert result.exit_code == 1 and advice in result.output and "Unexpected" not in result.output


@pytest.mark.parametrize("command", ["speak", "book"])
def test_a_checkpoint_without_a_run_is_refused_not_ignored(tone_voice, tmp_path, command):
    """`speak --checkpoint best` without --run spoke with the voice's own setting, saying nothing."""
    (tmp_path / "b.txt").write_text("One short line.")
    text = [str(tmp_path / "b.txt")] if command == "book" else ["hello"]
    result = tone_voice(command, "-e", "tone", "-v", "v", "--no-rank", "--checkpoint", "best", *text)
    assert result.exit_code == 1 and "--checkpoint best goes with --run RUN" in result.output


def test_book_o_into_a_folder_of_other_files_is_refused(tone_voice, tmp_path):
    """`book -o DIR` with DIR a folder of the user's wrote its book.m4b and manifest.json over theirs."""
    (tmp_path / "b.txt").write_text("One short line. And another one.")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "book.m4b").write_bytes(b"my own audiobook")
    result = tone_voice("book", "-e", "tone", "-v", "v", "--no-rank", "-o", str(mine), str(tmp_path / "b.txt"))
    assert result.exit_code == 1 and "not the folder of a book" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["book.m4b"] and (mine / "book.m4b").read_bytes() == b"my own audiobook"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for _ in range(2):  # an empty folder is used, and the book's folder is its own next time
        made = tone_voice("book", "-e", "tone", "-v", "v", "--no-rank", "-o", str(fresh), str(tmp_path / "b.txt"))
        assert made.exit_code == 0, made.output


@pytest.mark.parametrize("epochs", ["0", "-5"])
def test_train_init_refuses_epochs_below_one_instead_of_using_the_default(run, epochs):
    """`train init --epochs 0` (or -5) wrote a run of the engine's default 150 epochs, saying nothing."""
    result = run("train", "init", "r", "--dataset", "ds", "--epochs", epochs)
    assert result.exit_code == 1 and f"epochs is {epochs}; train for at least 1 epoch" in result.output


def test_train_list_shows_the_other_runs_when_one_config_is_broken(run):
    """A config.yaml broken by hand made `train list` fail for every run."""
    from voxmith.training import TrainingConfig, TrainingRun

    TrainingRun.create(run.home / "training", "fine", TrainingConfig())
    (run.home / "training" / "broken").mkdir()
    (run.home / "training" / "broken" / "config.yaml").write_text("schedule: [\n  oops")
    result = run("train", "list")
    assert result.exit_code == 0, result.output
    assert "broken: cannot be read:" in result.output and "Fix the file" in result.output
    assert any(line.startswith("fine") for line in result.output.splitlines())


def test_eval_refuses_a_rate_too_low_for_speech_before_loading_models(run, demo_files, demo_audio, tmp_path):
    """`eval` of a file whose header claims 1 Hz died with 'Unexpected MemoryError: Unable to allocate
    1.31 GiB' resampling it for the scoring models."""
    import soundfile as sf

    path = tmp_path / "one-hertz.wav"
    sf.write(path, demo_audio.samples[:2000], 1)
    result = run("eval", "--reference", str(demo_files[0]), str(path))
    assert result.exit_code == 1 and "sample rate of 1 Hz" in result.output


def test_models_list_of_an_unknown_engine_fails(run):
    """`models list nosuch` printed 'nosuch: unavailable (...)' and exited 0, so a script could not
    tell a typo from a listing."""
    result = run("models", "list", "nosuch")
    assert result.exit_code == 1 and "Unknown engine 'nosuch'" in result.output and "piper-vc" in result.output
    assert run("models", "list", "piper-vc").exit_code == 0


def test_eval_warns_about_a_file_without_speech(run, monkeypatch, demo_audio):
    """Before: `eval` of silence or noise printed a similarity and a MOS as if for a voice. The
    studio counts each file's speech (WebRTC's VAD) and the table is followed by a warning."""
    import numpy as np

    from voxmith.audio import to_mono
    from voxmith.audio.analysis import speech_seconds
    from voxmith.studio import Studio

    speech = to_mono(demo_audio.samples)
    assert speech_seconds(speech, demo_audio.sample_rate_hz) > 3.0
    quiet = np.zeros(3 * 16000, np.float32)
    hiss = np.random.default_rng(0).normal(0, 0.01, 3 * 16000).astype(np.float32)
    assert speech_seconds(quiet, 16000) < 0.3 and speech_seconds(hiss, 16000) < 0.3

    def fake_evaluate(self, files, **kwargs):
        return [{"file": "speech.wav", "duration_s": 2.0, "similarity": 0.7, "wer": None, "naturalness_mos": 3.5,
                 "transcript": "hello"},
                {"file": "quiet.wav", "duration_s": 3.0, "similarity": 0.4, "wer": None, "naturalness_mos": 1.1,
                 "transcript": "", "warning": "only 0.0 s of speech found (silence or noise?): its scores say "
                                              "little about a voice"}]

    monkeypatch.setattr(Studio, "evaluate", fake_evaluate)
    result = run("eval", "--reference", "ref.wav", "speech.wav", "quiet.wav")
    assert result.exit_code == 0, result.output
    assert "* quiet.wav: only 0.0 s of speech found" in result.output and "* speech.wav" not in result.output


def test_a_folder_whose_name_is_now_refused_is_said_to_be_renamed(run):
    """A voice folder 'Zoë<U+00A0>Smith' (made by hand, or before such names were refused) is listed
    but could be neither used nor removed: its name was refused as a name, and the name with an
    ordinary space was "not found. Did you mean 'Zoë Smith'?", offering the same-looking name."""
    nbsp = "Zo\u00eb\u00a0Smith"
    (run.home / "voices" / nbsp).mkdir(parents=True)
    (run.home / "datasets" / nbsp).mkdir(parents=True)
    assert "Zo\u00eb" in run("voices", "list").output
    for args in (("voices", "remove", "-y", nbsp), ("voices", "show", nbsp), ("dataset", "show", nbsp)):
        refused = run(*args)
        assert refused.exit_code == 1 and "Traceback" not in refused.output, refused.output
        assert "'Zo\\xeb\\xa0Smith'" in refused.output and "Rename the folder" in refused.output, refused.output
        assert "U+00A0 (NO-BREAK SPACE)" in refused.output and "Zo\u00eb Smith'" in refused.output  # a name to use
    typed = run("voices", "remove", "-y", "Zo\u00eb Smith")
    assert typed.exit_code == 1 and "Did you mean" not in typed.output
    assert "Rename the folder" in typed.output and "U+00A0" in typed.output, typed.output
    assert (run.home / "voices" / nbsp).is_dir()
    # a name typed with the character, no such folder: refused as before, no folder to rename
    refused = run("voices", "show", "Bo\u00a0b")
    assert "U+00A0" in refused.output and "Rename the folder" not in refused.output


def test_a_refused_run_name_is_said_as_refused_not_as_a_run_to_create(run):
    """`train show "de<U+200B>mo"` said "No training run named ..." and suggested a `train init` of
    that name, which is itself refused; the name's fault is said, as for voices and datasets."""
    shown = run("train", "show", "de\u200bmo")
    assert shown.exit_code == 1 and "U+200B (ZERO WIDTH SPACE)" in shown.output, shown.output
    assert "No training run" not in shown.output and "train init" not in shown.output
    assert "No training run named 'nothing'" in run("train", "show", "nothing").output
