"""The web UI driven in a real headless Chromium (Debian's chromium, Playwright for Python).

One server per module, a fresh page per test. Every test makes what it needs (a voice, a dataset)
through the studio when an earlier test has not, so each passes alone and in any order: create a
voice by uploading clips, generate speech and re-run it from the history, prepare a dataset and
edit a transcript, train, look at every tab (screenshots go to docs/screenshots/), errors as the
user's own words, and the access rules for non-loopback addresses.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# `make screenshots` (VOXMITH_UPDATE_SCREENSHOTS=1) refreshes the README's pictures in docs/;
# ordinary runs keep theirs in a temporary folder so a test run never dirties the checkout.
DOC_SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")
LONG = 240_000  # ms: the first generation enrolls the voice


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    from voxmith.studio import Studio

    return Studio(tmp_path_factory.mktemp("webui") / "ws", device="cpu")


@pytest.fixture(scope="module")
def server(studio):
    from voxmith.webui.server import launch

    app, url = launch(studio, f"127.0.0.1:{free_port()}", block=False)
    yield url
    app.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(server, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    page.goto(server)
    page.get_by_role("tab", name="Generate").wait_for()
    yield page
    page.close()


@pytest.fixture(scope="module")
def alice(studio, demo_files):
    """A voice for the tests that need one (made through the studio, not the page)."""
    if not studio.voices.exists("alice"):
        studio.voices.add("alice", demo_files)
    return "alice"


@pytest.fixture(scope="module")
def dataset(studio, alice):
    """A transcribed dataset: one made by an earlier test, or one prepared now."""
    names = studio.datasets.names()
    if names:
        return names[0]
    studio.prepare_dataset("mini", [alice])
    return "mini"


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    import os

    if os.environ.get("VOXMITH_UPDATE_SCREENSHOTS") == "1":
        DOC_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOC_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


def shot(page, folder, name):
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    assert (folder / f"{name}.png").stat().st_size > 10_000  # a real picture, not a blank page


def choose(page, dropdown_id, option):
    page.locator(f"#{dropdown_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_create_voice_by_uploading(page, screenshots, studio, demo_files):
    page.get_by_role("tab", name="Voices").click()
    page.locator("#voice-name textarea, #voice-name input").first.fill("bob")
    page.locator("#voice-files input[type=file]").set_input_files([str(p) for p in demo_files])
    expect(page.locator("#voice-files")).to_contain_text(demo_files[-1].stem, timeout=30_000)
    page.locator("#voice-save").click()
    expect(page.locator("#voice-status")).to_contain_text("now has 2 clip(s)", timeout=60_000)
    assert [p.name for p in studio.voices.get("bob").clip_paths] == [p.name for p in demo_files]
    # Saving selects the voice and shows its analysis.
    expect(page.locator("#voice-clips [data-testid='cell-0-0']")).to_contain_text("lj_1.flac", timeout=120_000)
    expect(page.locator("#voice-advice")).to_contain_text("of speech")
    page.wait_for_timeout(1500)  # let the plots render
    shot(page, screenshots, "voices")


def test_errors_name_the_users_file_and_log_one_line(page, tmp_path, capfd, caplog):
    broken = tmp_path / "my broken clip.wav"
    broken.write_bytes(b"RIFF not really a wav file" * 40)
    page.get_by_role("tab", name="Voices").click()
    page.locator("#voice-name textarea, #voice-name input").first.fill("carol")
    page.locator("#voice-files input[type=file]").set_input_files([str(broken)])
    expect(page.locator("#voice-files")).to_contain_text("my broken clip", timeout=30_000)
    capfd.readouterr()
    caplog.clear()
    page.locator("#voice-save").click()
    toast = page.get_by_text("Cannot read 'my broken clip.wav'")
    toast.wait_for(timeout=60_000)
    assert "voxmith-webui-" not in toast.inner_text() and "/tmp" not in toast.inner_text()  # no temporary path
    page.wait_for_timeout(500)
    assert "Traceback" not in capfd.readouterr().err  # the server console: no traceback for a user mistake...
    logged = [r.getMessage() for r in caplog.records if r.name == "voxmith.webui"]
    assert len(logged) == 1 and logged[0].startswith("save: Voice 'carol' was not changed")  # ...one line


def _generate(page, text):
    page.get_by_role("tab", name="Generate").click()
    page.locator("#gen-refresh").click()
    choose(page, "gen-voice", "alice")
    page.locator("#gen-text textarea").fill(text)
    page.locator("#gen-go").click()


def test_generate_speech(page, screenshots, studio, alice):
    before = len(list((studio.workspace.results_dir / alice).glob("*.json")))
    _generate(page, "Hello from the browser. This voice was cloned from two clips.")
    audio = page.locator("#gen-output audio[src]")
    audio.wait_for(state="attached", timeout=LONG)
    # Read the bytes behind the player the way the page does (its src may be a blob: URL).
    encoded = audio.evaluate("""async (el) => {
        const buffer = await (await fetch(el.src)).arrayBuffer();
        let binary = ''; const bytes = new Uint8Array(buffer);
        for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
        return btoa(binary);
    }""")
    import base64

    payload = base64.b64decode(encoded)
    samples, rate = sf.read(io.BytesIO(payload))
    assert rate == 22050 and samples.shape[0] / rate > 2.0
    assert np.sqrt(np.mean(samples ** 2)) > 0.01  # not silence
    assert len(list((studio.workspace.results_dir / alice).glob("*.json"))) == before + 1
    page.wait_for_timeout(500)
    shot(page, screenshots, "generate")


def test_history_loads_the_request_and_rerun_matches_cli_reproduce(page, studio, alice):
    from click.testing import CliRunner

    from voxmith.cli.main import cli
    from voxmith.studio.results import list_results
    from voxmith.studio.speech import SpeakRequest

    made = studio.speak(SpeakRequest("The history remembers every setting.", voice=alice, seed=7, candidates=2,
                                     rank=False))
    row = [e.sidecar_path for e in list_results(studio.workspace.results_dir)].index(made.sidecar_path)
    page.get_by_role("tab", name="Generate").click()
    page.get_by_text("History", exact=True).click()
    page.locator(f"[data-testid='cell-{row}-6']").first.click()
    expect(page.locator("#gen-text textarea")).to_have_value("The history remembers every setting.", timeout=30_000)
    expect(page.get_by_label("Seed (-1: random)")).to_have_value("7")
    expect(page.locator("#gen-candidates input[type=number]")).to_have_value("2")
    before = {e.sidecar_path for e in list_results(studio.workspace.results_dir)}
    page.get_by_role("button", name="Re-run with these settings").click()
    expect(page.locator("#gen-summary")).to_contain_text("Re-made", timeout=LONG)
    rerun = [e for e in list_results(studio.workspace.results_dir) if e.sidecar_path not in before]
    assert len(rerun) == 1
    cli_path = studio.workspace.home / "cli-reproduce.wav"
    result = CliRunner().invoke(cli, ["--home", str(studio.workspace.home), "-q", "reproduce",
                                      str(made.sidecar_path), "-o", str(cli_path)])
    assert result.exit_code == 0, result.output
    original, from_page, from_cli = (sf.read(p, dtype="int16")[0] for p in (made.path, rerun[0].audio_path, cli_path))

    def differ(a, b):
        return "shapes differ" if a.shape != b.shape else \
            f"{int(np.sum(a != b))} samples differ, by up to {int(np.max(np.abs(a.astype(int) - b)))}"

    # Exact across threads: the page's synthesis runs on a Gradio worker thread, the CLI's and the
    # original's on pytest's main thread (they differed by one 16-bit step while an enrollment's
    # worker pool left torch's thread count at 1 for threads started later; voxmith.torch_threads).
    assert np.array_equal(from_page, from_cli), f"page vs CLI: {differ(from_page, from_cli)}"
    assert np.array_equal(from_page, original), f"page vs original: {differ(from_page, original)}"

def test_convert_a_recording(page, screenshots, studio, alice, demo_files):
    page.get_by_role("tab", name="Convert").click()
    page.locator("#conv-go").click()
    expect(page.get_by_text("Upload or record the speech to convert first.")).to_be_visible(timeout=30_000)
    page.locator("#conv-input input[type=file]").set_input_files(str(demo_files[1]))
    choose(page, "conv-voice", alice)
    page.locator("#conv-go").click()
    page.locator("#conv-output audio[src]").wait_for(state="attached", timeout=LONG)
    sidecars = [json.loads(p.read_text()) for p in (studio.workspace.results_dir / alice).glob("*.json")]
    assert [s["kind"] for s in sidecars if s.get("kind")] == ["convert"]
    shot(page, screenshots, "convert")


def test_read_a_book_play_and_redo_a_sentence(page, screenshots, studio, alice, tmp_path, tone_engine):
    book = tmp_path / "tiny-book.txt"
    book.write_text("Chapter 1\n\nThe first page. [pause 1s] A second line.\n\nChapter 2\n\nThe end.\n")
    page.get_by_role("tab", name="Book").click()
    page.locator("#book-file input[type=file]").set_input_files(str(book))
    choose(page, "book-voice", alice)
    choose(page, "book-engine", "tone")
    page.get_by_label("Rank takes (Whisper) and flag sentences for review").uncheck()
    page.locator("#book-go").click()
    expect(page.locator("#book-summary")).to_contain_text("2 chapter(s)", timeout=LONG)
    expect(page.locator("#book-chapters")).to_contain_text("Chapter 2")
    page.locator("#book-sentences [data-testid='cell-1-4']").click()
    expect(page.locator("#book-chosen textarea, #book-chosen input").first).to_have_value("c01-s0002")
    page.locator("#book-player audio[src]").wait_for(state="attached", timeout=30_000)
    page.locator("#book-redo").click()
    manifest_path = studio.workspace.results_dir / alice / "tiny-book-book" / "manifest.json"

    def redone() -> int:
        return next(s for s in json.loads(manifest_path.read_text())["sentences"] if s["id"] == "c01-s0002")["redo"]

    for _ in range(120):  # the page shows the same summary after a redo: watch the manifest
        if redone() == 1:
            break
        page.wait_for_timeout(500)
    assert redone() == 1
    shot(page, screenshots, "book")


def test_prepare_dataset_and_edit_transcript(page, screenshots, studio, alice):
    page.get_by_role("tab", name="Dataset").click()
    page.locator("#ds-name textarea, #ds-name input").first.fill("ui-ds")
    choose(page, "ds-voices", alice)
    page.keyboard.press("Escape")
    page.locator("#ds-prepare").click()
    expect(page.locator("#ds-status")).to_contain_text("usable segments", timeout=LONG)
    page.locator("#ds-table [data-testid='cell-0-3']").click()
    transcript = page.locator("#ds-transcript textarea")
    page.wait_for_function("document.querySelector('#ds-transcript textarea').value.length > 0")
    transcript.fill("An edited transcript from the browser.")
    page.locator("#ds-save").click()
    expect(page.locator("#ds-status")).to_contain_text("saved", timeout=30_000)
    train = (studio.datasets.get("ui-ds").path / "train.txt").read_text()
    assert "An edited transcript from the browser." in train
    shot(page, screenshots, "dataset")


def test_dataset_tab_shows_the_preselected_dataset(page, studio, dataset):
    first = studio.datasets.names()[0]
    page.get_by_role("tab", name="Dataset").click()
    expect(page.locator("#ds-select input")).to_have_value(first, timeout=30_000)
    expect(page.locator("#ds-table [data-testid='cell-0-0']")).to_contain_text(f"{first}_0", timeout=30_000)


def test_train_a_run_and_give_it_to_a_voice(page, screenshots, studio, alice, dataset, finetune_check_passes):
    page.get_by_role("tab", name="Training").click()
    page.locator("#tr-name textarea, #tr-name input").first.fill("mini-ft")
    choose(page, "tr-dataset", dataset)
    page.locator("#tr-epochs input").fill("2")
    weights = page.locator("#tr-weights textarea, #tr-weights input").first
    assert weights.get_attribute("placeholder") == "cepstral=1"  # the chosen engine's losses only
    weights.fill("cepstral=2")
    settings = page.locator("#tr-settings textarea, #tr-settings input").first
    settings.fill("stage=vocoder")  # sv2tts' own setting: piper-vc has none, and says so
    page.locator("#tr-create").click()
    page.get_by_text("has no training settings of its own").wait_for(timeout=30_000)  # the error message
    assert "mini-ft" not in studio.training.names()
    settings.fill("")
    page.locator("#tr-create").click()
    expect(page.locator("#tr-create-status")).to_contain_text("Created", timeout=30_000)
    assert studio.training.open("mini-ft").load_config().losses.weights == {"cepstral": 2.0}
    page.locator("#tr-start").click()
    # The timer polls the background job; the loss curve appears with the first checkpoint.
    expect(page.locator("#tr-status")).to_contain_text("finished at step", timeout=LONG)
    expect(page.locator("#tr-plot img")).to_be_visible(timeout=10_000)
    expect(page.locator("#tr-table")).to_contain_text("mini-ft")
    assert studio.training.summary("mini-ft").latest is not None
    choose(page, "tr-voice", alice)
    page.locator("#tr-use").click()
    # Use checks the weights on alice first (piper-vc's intelligibility guard, answered as passed
    # here: the real check runs in test_training_studio.py; enrolls her if needed).
    expect(page.locator("#tr-use-status")).to_contain_text("now speaks with run", timeout=LONG)
    assert len(finetune_check_passes) == 1
    try:
        assert studio.voices.get(alice).metadata["finetune"]["run"] == "mini-ft"
        shot(page, screenshots, "training")
    finally:  # other tests speak with alice's stock weights
        studio.training.use(alice, None)


def test_settings_tab(page, screenshots, studio):
    page.get_by_role("tab", name="Settings").click()
    expect(page.locator("#settings-info")).to_contain_text(str(studio.workspace.home))
    shot(page, screenshots, "settings")


def test_second_tab_sees_the_same_state(page, server, studio, alice):
    if not studio.voices.exists("dave"):  # made after the first page loaded, as by the CLI
        studio.voices.add("dave", studio.voices.get(alice).clip_paths[:1])
    other = page.context.browser.new_page()
    other.goto(server)
    other.get_by_role("tab", name="Generate").wait_for()
    other.locator("#gen-voice input").click()
    other.get_by_role("option", name="dave", exact=True).wait_for()
    other.close()


def test_network_listen_without_token_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "voxmith", "--home", str(tmp_path / "ws"), "webui",
                           "--listen", "0.0.0.0:7999"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 1
    assert "Refusing to listen on 0.0.0.0" in proc.stderr and "--share-token" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_token_protects_the_page(studio, browser):
    from voxmith.webui.server import launch

    port = free_port()
    app, _ = launch(studio, f"0.0.0.0:{port}", token="correct-horse-battery", block=False)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_text("enter any user name and the share token").wait_for()
        assert page.get_by_role("tab", name="Generate").count() == 0
        page.get_by_label("username").fill("me")
        page.get_by_label("password").fill("wrong-token")
        page.keyboard.press("Enter")
        page.get_by_text("Incorrect Credentials").wait_for()
        # The form forgets the user name after a failure; the token alone must then be enough.
        page.get_by_label("username").fill("")
        page.get_by_label("password").fill("correct-horse-battery")
        page.get_by_role("button", name="Login").click()
        page.get_by_role("tab", name="Generate").wait_for()
        page.close()
    finally:
        app.close()
