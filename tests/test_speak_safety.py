"""Speaking never loses or overwrites a result: names reserved atomically (concurrent `speak`),
Ctrl-C keeps the finished sentences and leaves no clutter. Uses the instant tone engine."""

from __future__ import annotations

import ctypes
import json
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest
from click.testing import CliRunner

from tests.tone_engine import ToneEngine
from voxmith.engines import register_engine
from voxmith.engines.registry import unregister_engine
from voxmith.errors import VoxmithError
from voxmith.fsutil import reserve_file
from voxmith.studio.speech import SpeakInterrupted, SpeakRequest


class SlowTone(ToneEngine):
    """Takes a while per sentence, as real engines do: the window in which a late-written name
    used to be taken twice."""

    name = "slow-tone"

    def synthesize(self, text, conditioning, settings, *, seed, candidates=1, progress=None):
        time.sleep(0.3)
        return super().synthesize(text, conditioning, settings, seed=seed, candidates=candidates)


class StopsAtStop(ToneEngine):
    """Ctrl-C arrives while it speaks a sentence containing 'stop'; an error for 'broken'."""

    name = "stop-tone"

    def synthesize(self, text, conditioning, settings, *, seed, candidates=1, progress=None):
        if "stop" in text.lower():
            raise KeyboardInterrupt
        if "broken" in text.lower():
            raise VoxmithError("the engine broke")
        return super().synthesize(text, conditioning, settings, seed=seed, candidates=candidates)


def _ctrl_c_inside_c_code() -> None:
    """Ctrl-C arriving while C code runs a Python callback (as llvmlite's, while numba compiles):
    Python prints it as 'Exception ignored' and drops it."""
    compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

    def interrupted(a, b):
        raise KeyboardInterrupt

    values = (ctypes.c_int * 2)(2, 1)
    ctypes.CDLL(None).qsort(values, 2, ctypes.sizeof(ctypes.c_int), compare(interrupted))


class DropsCtrlC(ToneEngine):
    """Ctrl-C is pressed (and dropped by a callback from C) while it speaks a sentence with 'stop'."""

    name = "dropped-ctrl-c-tone"

    def synthesize(self, text, conditioning, settings, *, seed, candidates=1, progress=None):
        if "stop" in text.lower():
            _ctrl_c_inside_c_code()
        return super().synthesize(text, conditioning, settings, seed=seed, candidates=candidates)


@pytest.fixture
def voice_studio(studio, demo_files):
    for cls in (SlowTone, StopsAtStop, DropsCtrlC):
        register_engine(cls.name, cls)
    studio.voices.add("v", demo_files)
    yield studio
    for cls in (SlowTone, StopsAtStop, DropsCtrlC):
        unregister_engine(cls.name)


def test_same_text_same_second_gets_distinct_files(voice_studio, monkeypatch):
    import voxmith.studio.studio as studio_module

    # Every call in the same second (pinned), started together; each must get its own file.
    monkeypatch.setattr(studio_module.time, "strftime", lambda fmt, *args: "20260101-120000")
    voice_studio.conditioning("v", voice_studio.engine("slow-tone"))  # enrol once, before the race
    barrier, results, errors = threading.Barrier(5), [], []

    def speak(i):
        try:
            barrier.wait()
            results.append(voice_studio.speak(SpeakRequest("Same words.", voice="v", engine="slow-tone", seed=i,
                                                            rank=False)))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=speak, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    paths = {r.path for r in results}
    assert len(paths) == 5
    for r in results:  # each file's sidecar describes that file's own request
        assert json.loads(r.sidecar_path.read_text())["seed"] == r.sidecar["seed"]
        assert r.path.stat().st_size > 1000


def _reserve(path):
    return reserve_file(path)


def test_reserve_file_is_exclusive_across_processes(tmp_path):
    target = str(tmp_path / "name.wav")
    with ProcessPoolExecutor(4, mp_context=get_context("spawn")) as pool:
        outcomes = list(pool.map(_reserve, [target] * 8))
    assert outcomes.count(True) == 1


def test_ctrl_c_keeps_finished_sentences(voice_studio):
    text = "One two three. Four five six. Please stop here. Seven eight."
    with pytest.raises(SpeakInterrupted) as info:
        voice_studio.speak(SpeakRequest(text, voice="v", engine="stop-tone", seed=1, candidates=2, rank=False))
    result = info.value.result
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["interrupted"] == {"sentences_done": 2, "sentences_total": 4}
    assert [s["text"] for s in sidecar["sentences"]] == ["One two three.", "Four five six."]
    assert result.path.exists() and result.duration_s > 0.5
    takes = sorted(p.name for p in result.path.with_name(result.path.stem + ".takes").iterdir())
    assert takes == ["s001-take1.wav", "s001-take2.wav", "s002-take1.wav", "s002-take2.wav"]
    folder = result.path.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [result.path.name, result.sidecar_path.name, result.path.stem + ".takes"])


@pytest.mark.parametrize("text,raised", [("Stop right away. Then more.", KeyboardInterrupt),
                                         ("Fine first. Broken second.", VoxmithError)])
def test_nothing_left_behind_when_nothing_is_finished_or_on_errors(voice_studio, text, raised):
    with pytest.raises(raised) as info:
        voice_studio.speak(SpeakRequest(text, voice="v", engine="stop-tone", seed=1, candidates=2, rank=False))
    assert not isinstance(info.value, SpeakInterrupted)
    folder = voice_studio.workspace.results_dir / "v"
    assert not folder.exists() or not list(folder.iterdir())  # no placeholder, no .takes folder


def test_ctrl_c_with_o_keeps_the_part_and_cli_exits_130(voice_studio, tmp_path):
    from voxmith.cli.main import cli

    out = tmp_path / "long.wav"
    result = CliRunner().invoke(cli, ["--home", str(voice_studio.workspace.home), "-q", "speak", "-e", "stop-tone",
                                      "-v", "v", "--no-rank", "-o", str(out), "First part. Then stop. Never."])
    assert result.exit_code == 130, result.output
    assert "the 1 finished sentence(s) of 3 are saved" in result.output
    assert json.loads(out.with_suffix(".json").read_text())["interrupted"]["sentences_done"] == 1
    # A Ctrl-C before anything is finished leaves nothing at -o.
    other = tmp_path / "none.wav"
    result = CliRunner().invoke(cli, ["--home", str(voice_studio.workspace.home), "-q", "speak", "-e", "stop-tone",
                                      "-v", "v", "--no-rank", "-o", str(other), "Stop now."])
    assert result.exit_code == 130 and not other.exists()


def test_o_never_replaces_a_file_beside_it_without_force(voice_studio, tmp_path):
    """`-o notes.wav` wrote its sidecar over the user's own notes.json, unasked."""
    mine = tmp_path / "notes.json"
    mine.write_text('{"mine": true}')
    request = SpeakRequest("Hello there.", voice="v", engine="stop-tone", seed=1, rank=False, output=tmp_path / "notes.wav")
    with pytest.raises(VoxmithError, match="notes.json' already exists.*sidecar.*--force"):
        voice_studio.speak(request)
    assert mine.read_text() == '{"mine": true}' and not (tmp_path / "notes.wav").exists()
    (tmp_path / "other.takes").mkdir()
    with pytest.raises(VoxmithError, match="other.takes' already exists.*other takes"):
        voice_studio.speak(SpeakRequest("Hello there.", voice="v", engine="stop-tone", rank=False,
                                        output=tmp_path / "other.wav"))
    forced = voice_studio.speak(SpeakRequest("Hello there.", voice="v", engine="stop-tone", seed=1, rank=False,
                                             output=tmp_path / "notes.wav", overwrite=True))
    assert json.loads(mine.read_text())["text"] == "Hello there." and forced.path.exists()


def test_ctrl_c_deletes_only_the_takes_it_wrote(voice_studio, tmp_path):
    """Ctrl-C deleted every file of the takes folder that the kept sentences did not name: with
    `-o notes.wav --force`, whatever the user had in notes.takes/ too."""
    folder = tmp_path / "notes.takes"
    folder.mkdir()
    (folder / "keep-me.txt").write_text("mine")
    (folder / "s009-take1.wav").write_bytes(b"an older take")
    with pytest.raises(SpeakInterrupted) as info:
        voice_studio.speak(SpeakRequest("One two three. Please stop here.", voice="v", engine="stop-tone", seed=1,
                                        candidates=2, rank=False, output=tmp_path / "notes.wav", overwrite=True))
    assert info.value.result.path.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["keep-me.txt", "s001-take1.wav", "s001-take2.wav",
                                                        "s009-take1.wav"]


def test_an_empty_clip_dropped_in_by_hand_is_named_with_the_voices_advice(voice_studio):
    """An empty or undecodable file dropped into a voice's folder stopped `speak` with the bare
    decoder message for that one file (from the cache key's clip durations), not the voice's list
    of unusable clips and what to do."""
    folder = voice_studio.voices.get("v").path
    (folder / "empty.flac").write_bytes(b"")
    (folder / "junk.wav").write_text("not audio")
    with pytest.raises(VoxmithError) as info:
        voice_studio.speak(SpeakRequest("Hello there.", voice="v", engine="slow-tone", rank=False))
    message = str(info.value)
    assert "Voice 'v' has clips that cannot be used; remove or replace them" in message
    assert "empty.flac" in message and "junk.wav" in message


def test_bad_settings_and_outputs_are_refused_before_the_voice_is_enrolled(voice_studio, tmp_path, monkeypatch):
    """An out-of-range setting or an -o that exists was refused only after the voice's enrollment
    (half a minute to a minute on 2 cores for a new piper-vc voice); a book's -o folder of other
    files too."""
    from voxmith.studio.book import BookRequest

    enrolled = []
    monkeypatch.setattr(SlowTone, "prepare_conditioning",
                        lambda self, clips, progress=None: enrolled.append(1) or {"rms": 0.1})
    taken = tmp_path / "taken.wav"
    taken.write_bytes(b"mine")
    (tmp_path / "book.txt").write_text("A line to read.")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    refused = [
        lambda: voice_studio.speak(SpeakRequest("Hello.", voice="v", engine="slow-tone", settings={"pitch_scale": 9})),
        lambda: voice_studio.speak(SpeakRequest("Hello.", voice="v", engine="slow-tone", output=taken)),
        lambda: voice_studio.book(BookRequest(source=tmp_path / "book.txt", voice="v", engine="slow-tone",
                                              settings={"pitch_scale": 9})),
        lambda: voice_studio.book(BookRequest(source=tmp_path / "book.txt", voice="v", engine="slow-tone",
                                              output_dir=tmp_path / "folder")),
    ]
    for attempt in refused:
        with pytest.raises(VoxmithError):
            attempt()
    assert enrolled == [] and taken.read_bytes() == b"mine"


def test_a_ctrl_c_dropped_inside_c_code_still_stops_the_command(voice_studio, tmp_path, capsys):
    # Before: Ctrl-C during the first sentence (numba compiling through llvmlite) printed "Exception
    # ignored ... KeyboardInterrupt" and the command went on to the end as if nothing was pressed.
    from voxmith.cli.main import cli

    out = tmp_path / "long.wav"
    result = CliRunner().invoke(cli, ["--home", str(voice_studio.workspace.home), "-q", "speak", "-e",
                                      "dropped-ctrl-c-tone", "-v", "v", "--no-rank", "-o", str(out),
                                      "First part. Then stop here. Never said. Nor this."])
    assert result.exit_code == 130, result.output
    assert "Exception ignored" not in capsys.readouterr().err
    # stopped at the next sentence: the sentence being spoken when Ctrl-C came is finished and kept
    assert json.loads(out.with_suffix(".json").read_text())["interrupted"]["sentences_done"] == 2


def test_ctrl_c_during_a_text_file_says_interrupted_once_and_how_to_resume(voice_studio, tmp_path):
    from voxmith.cli.main import cli

    text = tmp_path / "chapter.txt"
    text.write_text("First part. Then stop. Never.", encoding="utf-8")
    result = CliRunner().invoke(cli, ["--home", str(voice_studio.workspace.home), "-q", "speak", "-e", "stop-tone",
                                      "-v", "v", "--no-rank", "--text-file", str(text), "-o", str(tmp_path / "c.wav")])
    assert result.exit_code == 130, result.output
    assert result.output.count("Interrupted") == 1 and "run the same command again to resume" in result.output


def test_reproduce_takes_the_results_audio_file_for_its_sidecar(voice_studio, tmp_path):
    # Before: `voxmith reproduce results/v/x.wav` said it "cannot be read as JSON (UnicodeDecodeError)".
    from voxmith.cli.main import cli

    made = voice_studio.speak(SpeakRequest(text="Hello there.", voice="v", engine="slow-tone", seed=3, rank=False))
    again = tmp_path / "again.wav"
    result = CliRunner().invoke(cli, ["--home", str(voice_studio.workspace.home), "-q", "reproduce", str(made.path),
                                      "-o", str(again)])
    assert result.exit_code == 0, result.output
    from voxmith.audio import load_audio

    assert (load_audio(again).samples == load_audio(made.path).samples).all()  # the same audio


def test_eval_of_results_compares_with_the_voice_they_were_made_in(voice_studio, monkeypatch):
    # Before: `voxmith eval results/v/x.wav` answered "Compare with --voice NAME or --reference CLIP...".
    import voxmith.studio.studio as studio_module

    made = voice_studio.speak(SpeakRequest(text="Hello there.", voice="v", engine="slow-tone", seed=3, rank=False))
    compared = []

    def stop_here(voice, device, progress=None):
        compared.append(voice.name)
        raise VoxmithError("stop before the scoring models load")

    monkeypatch.setattr(studio_module, "voice_embeddings", stop_here)
    with pytest.raises(VoxmithError, match="stop before"):
        voice_studio.evaluate([made.path])
    assert compared == ["v"]
    with pytest.raises(VoxmithError, match="--voice NAME or --reference"):  # a file that is no result: as before
        voice_studio.evaluate([voice_studio.voices.get("v").clip_paths[0]])
