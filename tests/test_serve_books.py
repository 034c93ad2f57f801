"""`/voxmith/books` of `voxmith serve`: a real server on a random loopback port, spoken to with httpx.
A two-sentence book read by the paced tone engine (tests/serve_engines.py): what is under test is
the job, its events, status and files, and the limits on what a client may name or send."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import time
from types import SimpleNamespace

import httpx
import pytest
import soundfile as sf

import voxmith.asr
import voxmith.quality
from tests.serve_engines import PacedToneEngine, running_api, serve_process
from voxmith.engines import register_engine
from voxmith.engines.registry import unregister_engine
from voxmith.errors import VoxmithError
from voxmith.serve import ServeConfig
from voxmith.studio import Studio

TONE = PacedToneEngine.name
TWO_SENTENCES = b"The lamp was lit at dusk. The keeper slept at dawn.\n"


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    register_engine(TONE, PacedToneEngine)
    studio = Studio(tmp_path_factory.mktemp("serve-books") / "ws", device="cpu")
    studio.import_demo_voice()
    yield studio
    unregister_engine(TONE)



def running(studio, **config):
    """The API on a free loopback port with one synthesis worker (books have their own thread)."""
    return running_api(studio, ServeConfig(**{"workers": 1, **config}))


def _fields(**extra):
    return {"voice": "demo", "engine": TONE, "rank": "false", "seed": "3", "format": "wav", **extra}


def _events(url: str, job_id: str, after: int = -1) -> list:
    """Every event of the job until it ends, read as a client reads server-sent events."""
    events = []
    with httpx.stream("GET", f"{url}/voxmith/books/{job_id}/events", params={"after": after}, timeout=60) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: "):]))
    return events


def test_an_uploaded_book_is_read_with_progress_events_status_and_files(studio):
    with running(studio) as url:
        started = httpx.post(f"{url}/voxmith/books", data=_fields(),
                             files={"book": ("tiny.txt", TWO_SENTENCES, "text/plain")}, timeout=30)
        assert started.status_code == 202, started.text
        job = started.json()
        assert job["status"] in ("queued", "running") and job["folder"] == "demo/tiny-book"

        events = _events(url, job["id"])
        kinds = [e["type"] for e in events]
        assert kinds[0] == "book.queued" and "book.started" in kinds and kinds[-1] == "book.done"
        reading = [e for e in events if e["type"] == "book.progress" and e["stage"] == "reading the book (sentences)"]
        assert reading[-1]["done"] == reading[-1]["total"] == 2 and reading[-1]["unit"] == "sentence"
        assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        # a client that reconnects after an event gets only the later ones
        assert _events(url, job["id"], after=events[-2]["seq"]) == events[-1:]

        status = httpx.get(f"{url}{job['status_url']}").json()
        assert status["status"] == "done" and status["error"] is None
        result = status["result"]
        assert result["sentences"] == 2 and result["chapters"] == 1 and result["review"] == []
        names = [f["name"] for f in result["files"]]
        assert names[:2] == ["book.wav", "manifest.json"] and any(n.startswith("chapters/") for n in names)
        manifest = httpx.get(f"{url}{result['files'][1]['url']}").json()
        assert [s["text"] for s in manifest["sentences"]] == ["The lamp was lit at dusk.", "The keeper slept at dawn."]
        audio, rate = sf.read(io.BytesIO(httpx.get(f"{url}{result['files'][0]['url']}").content))
        assert rate == manifest["output"]["sample_rate_hz"]
        assert len(audio) / rate == pytest.approx(manifest["output"]["duration_s"], abs=1e-3)
        assert (studio.workspace.results_dir / "demo" / "tiny-book" / "book.wav").is_file()  # in the workspace
        assert job["id"] in [b["id"] for b in httpx.get(f"{url}/voxmith/books").json()["books"]]

        # Only the book's own files are served: nothing outside its folder, not its resume state.
        for name in ("../../demo/voice.json", "%2E%2E/%2E%2E/%2E%2E/voices/demo/voice.json", "sentences/c01-s0001.json",
                     "sentences/c01-s0001.npy", "book.json.missing", "book%00.wav", "x" * 5000 + ".wav"):
            assert httpx.get(f"{url}/voxmith/books/{job['id']}/files/{name}").status_code == 404, name
        assert httpx.get(f"{url}/voxmith/books/nope").status_code == 404


def test_a_workspace_book_is_named_relative_to_the_workspace_and_never_outside(studio, tmp_path):
    home = studio.workspace.home
    (home / "books").mkdir(exist_ok=True)
    (home / "books" / "short.md").write_bytes(b"# One\n\n" + TWO_SENTENCES)
    outside = tmp_path / "secret.txt"
    outside.write_bytes(TWO_SENTENCES)
    (home / "books" / "link.txt").symlink_to(outside)
    with running(studio, max_book_bytes=1000) as url:
        made = httpx.post(f"{url}/voxmith/books", data=_fields(path="books/short.md"), timeout=30)
        assert made.status_code == 202, made.text
        assert _events(url, made.json()["id"])[-1]["type"] == "book.done"
        assert httpx.get(f"{url}/voxmith/books/{made.json()['id']}").json()["result"]["chapters"] == 1

        for path, status in (("../secret.txt", 403), (str(outside), 403), ("books/link.txt", 403),
                             ("books/none.txt", 404), ("voices/demo/voice.json", 400), ("books/a\x00.txt", 400),
                             ("books/" + "x" * 5000 + ".txt", 400)):
            refused = httpx.post(f"{url}/voxmith/books", data=_fields(path=path), timeout=30)
            assert refused.status_code == status, (path, refused.text)
            assert refused.json()["error"]["param"] == "path"
        both = httpx.post(f"{url}/voxmith/books", data=_fields(path="books/short.md"),
                          files={"book": ("tiny.txt", TWO_SENTENCES)}, timeout=30)
        assert both.status_code == 400 and "one of them" in both.json()["error"]["message"]
        assert httpx.post(f"{url}/voxmith/books", data=_fields(), timeout=30).status_code == 400

        # Bounded: an upload or a workspace file over max_book_bytes is refused, and nothing is kept.
        big = TWO_SENTENCES * 40
        (home / "books" / "big.txt").write_bytes(big)
        too_big = httpx.post(f"{url}/voxmith/books", data=_fields(), files={"book": ("big.txt", big)}, timeout=30)
        assert too_big.status_code == 413 and "limit" in too_big.json()["error"]["message"]
        assert httpx.post(f"{url}/voxmith/books", data=_fields(path="books/big.txt"), timeout=30).status_code == 413
        assert not [p for p in studio.workspace.uploads_dir.rglob("big.txt")]
        wrong = httpx.post(f"{url}/voxmith/books", data=_fields(), files={"book": ("song.mp3", b"x")}, timeout=30)
        assert wrong.status_code == 400
        # Retries and the WER limit have the bounds of /voxmith/speak (a huge retries would never end).
        for field, value in (("retries", "11"), ("retries", "-1"), ("max_wer", "1.5"), ("max_wer", "-0.1")):
            refused = httpx.post(f"{url}/voxmith/books", data=_fields(**{field: value}),
                                 files={"book": ("tiny.txt", TWO_SENTENCES)}, timeout=30)
            assert refused.status_code == 400 and refused.json()["error"]["param"] == field, (field, refused.text)
        unknown = httpx.post(f"{url}/voxmith/books", data=_fields(voice="nobody"),
                             files={"book": ("tiny.txt", TWO_SENTENCES)}, timeout=30)
        assert unknown.status_code == 400 and "nobody" in unknown.json()["error"]["message"]


class _MishearsOnce:
    """Whisper stand-in: the second (shorter: the tone engine says 0.2 s a word) sentence is misheard
    the first time only, so the book's review list holds it until it is made again."""

    def __init__(self):
        self.misheard = False

    def transcribe(self, samples, sample_rate_hz, **kwargs):
        if len(samples) / sample_rate_hz > 1.1:
            return SimpleNamespace(text="The lamp was lit at dusk.")
        text = "The keeper slept at dawn." if self.misheard else "The keeper"
        self.misheard = True
        return SimpleNamespace(text=text)


def test_one_sentence_of_a_finished_book_is_made_again_over_http(studio, monkeypatch):
    mos = SimpleNamespace(score=lambda samples, rate: 3.5)  # DistillMOS would take seconds to load
    monkeypatch.setattr(voxmith.quality, "get_naturalness_model", lambda: mos)
    transcriber = _MishearsOnce()
    monkeypatch.setattr(voxmith.asr, "get_transcriber", lambda *a, **k: transcriber)
    PacedToneEngine.delay_s = 0.5  # the book is still being read when the first redo comes
    with running(studio) as url:
        job = httpx.post(f"{url}/voxmith/books", data=_fields(rank="true", retries="0"),
                         files={"book": ("redo.txt", TWO_SENTENCES, "text/plain")}, timeout=30).json()
        too_soon = httpx.post(f"{url}/voxmith/books/{job['id']}/sentences/c01-s0002/redo", timeout=30)
        assert too_soon.status_code == 409 and "once the book is done" in too_soon.json()["error"]["message"]
        assert _events(url, job["id"])[-1]["type"] == "book.done"
        PacedToneEngine.delay_s = 0.0
        before = httpx.get(f"{url}/voxmith/books/{job['id']}/files/manifest.json").json()["sentences"]
        assert httpx.get(f"{url}/voxmith/books/{job['id']}").json()["result"]["review"] == ["c01-s0002"]

        redo = httpx.post(f"{url}/voxmith/books/{job['id']}/sentences/c01-s0002/redo", timeout=30)
        assert redo.status_code == 202, redo.text
        assert redo.json()["redo"] == "c01-s0002" and redo.json()["folder"] == job["folder"]
        events = _events(url, redo.json()["id"])
        assert events[-1]["type"] == "book.done"
        assert any(e.get("stage", "").startswith("c01-s0002: made again") for e in events)
        after = httpx.get(f"{url}/voxmith/books/{redo.json()['id']}/files/manifest.json").json()["sentences"]
        assert after[0] == before[0]  # the other sentence is untouched
        assert after[1]["redo"] == before[1]["redo"] + 1 and after[1]["seed"] != before[1]["seed"]
        # the first job shows the book as it is now: the sentence made again (heard right) left the list
        assert httpx.get(f"{url}/voxmith/books/{redo.json()['id']}").json()["result"]["review"] == []
        assert httpx.get(f"{url}/voxmith/books/{job['id']}").json()["result"]["review"] == []

        for sentence, status, words in (("c09-s0001", 404, "no sentence 'c09-s0001'"),
                                        ("../../x", 404, "")):
            refused = httpx.post(f"{url}/voxmith/books/{job['id']}/sentences/{sentence}/redo", timeout=30)
            assert refused.status_code == status and words in refused.json()["error"]["message"]
        assert httpx.post(f"{url}/voxmith/books/nope/sentences/c01-s0001/redo", timeout=30).status_code == 404

        # An error naming the book during a redo names the upload as the client sent it, not where the
        # server keeps it (before: the redo job did not know its book was an upload).
        def book_gone(request, redo=None, progress=None):
            raise VoxmithError(f"The book '{request.source}' does not exist.")

        monkeypatch.setattr(studio, "book", book_gone)
        failed = httpx.post(f"{url}/voxmith/books/{job['id']}/sentences/c01-s0002/redo", timeout=30).json()
        assert _events(url, failed["id"])[-1]["type"] == "book.failed"
        error = httpx.get(f"{url}/voxmith/books/{failed['id']}").json()["error"]
        assert error == "The book 'redo.txt' does not exist.", error


def test_a_cancelled_book_keeps_its_sentences_and_the_same_book_resumes(studio):
    text = b" ".join(b"Sentence number %d is here." % i for i in range(1, 7))
    PacedToneEngine.delay_s = 0.3
    with running(studio) as url:
        job = httpx.post(f"{url}/voxmith/books", data=_fields(),
                         files={"book": ("six.txt", text)}, timeout=30).json()
        deadline = time.monotonic() + 30
        while not any(e.get("done", 0) >= 1 for e in _progress(url, job["id"])):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert httpx.delete(f"{url}/voxmith/books/{job['id']}").status_code == 200
        events = _events(url, job["id"])
        assert events[-1]["type"] == "book.cancelled"
        assert httpx.get(f"{url}/voxmith/books/{job['id']}").json()["status"] == "cancelled"
        PacedToneEngine.delay_s = 0.0
        again = httpx.post(f"{url}/voxmith/books", data=_fields(), files={"book": ("six.txt", text)}, timeout=30)
        events = _events(url, again.json()["id"])
        assert events[-1]["type"] == "book.done"
        assert any(e.get("stage", "").startswith("resuming:") for e in events)


def _progress(url: str, job_id: str) -> list:
    status = httpx.get(f"{url}/voxmith/books/{job_id}").json()
    return [status["progress"]] if status["progress"] and status["progress"]["stage"].startswith("reading") else []


def test_an_uploaded_book_is_kept_while_its_job_runs_and_after_only_if_the_book_was_started(studio):
    uploads = studio.workspace.uploads_dir
    with running(studio) as url:
        # the job fails before it starts the book's folder (no such engine): the upload goes
        failed = httpx.post(f"{url}/voxmith/books", data=_fields(engine="no-such-engine"),
                            files={"book": ("never.txt", TWO_SENTENCES)}, timeout=30)
        assert failed.status_code == 202, failed.text
        assert _events(url, failed.json()["id"])[-1]["type"] == "book.failed"
        deadline = time.monotonic() + 10
        while list(uploads.rglob("never.txt")):
            assert time.monotonic() < deadline, "the upload of a book that made nothing was kept"
            time.sleep(0.05)
        # a book that was made keeps its upload: the manifest names it
        made = httpx.post(f"{url}/voxmith/books", data=_fields(),
                          files={"book": ("kept.txt", TWO_SENTENCES)}, timeout=30)
        assert _events(url, made.json()["id"])[-1]["type"] == "book.done"
        manifest = json.loads((studio.workspace.results_dir / "demo" / "kept-book" / "manifest.json").read_text())
        time.sleep(0.2)  # the release runs in the event loop after the job ends
        assert [str(p.resolve()) for p in uploads.rglob("kept.txt")] == [manifest["source_path"]]


TEN_SENTENCES = b" ".join(b"Line %d of the lighthouse log." % i for i in range(1, 11))


def _wait_for_sentences(url: str, job_id: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while not any(e.get("done", 0) >= count for e in _progress(url, job_id)):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _resume_reads_only_the_rest(url: str, job: dict, folder) -> None:
    """Resume an interrupted `job` (as a restarted server lists it): the same job reads only the
    sentences its folder lacks, and finishes the book."""
    done_before = sorted(p.stem for p in (folder / "sentences").glob("c*.json") if p.with_suffix(".npy").is_file())
    assert job["status"] == "interrupted" and job["sentences_done"] == len(done_before) >= 1
    texts_before = {json.loads((folder / "sentences" / f"{s}.json").read_text())["text"] for s in done_before}
    calls = len(PacedToneEngine.calls)
    resumed = httpx.post(f"{url}{job['resume_url']}", timeout=30)
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["id"] == job["id"] and resumed.json()["status"] in ("queued", "running")
    events = _events(url, job["id"], after=job["progress"]["seq"] if job["progress"] else -1)
    assert events[-1]["type"] == "book.done", events
    assert any(e.get("stage", "") == f"resuming: {len(done_before)} of 10 sentences already done" for e in events)
    made = PacedToneEngine.calls[calls:]
    assert len(made) == 10 - len(done_before) and not texts_before & set(made)  # nothing made twice
    status = httpx.get(f"{url}/voxmith/books/{job['id']}").json()
    assert status["status"] == "done" and status["result"]["sentences"] == 10 and "resume_url" not in status
    again = httpx.post(f"{url}{job['resume_url']}", timeout=30)
    assert again.status_code == 409 and "is done" in again.json()["error"]["message"]


def test_a_restarted_server_lists_its_book_jobs_and_resumes_an_interrupted_one(studio, caplog):
    try:
        with running(studio) as url:
            finished = httpx.post(f"{url}/voxmith/books", data=_fields(),
                                  files={"book": ("kept-job.txt", TWO_SENTENCES)}, timeout=30).json()
            assert _events(url, finished["id"])[-1]["type"] == "book.done"
            PacedToneEngine.delay_s = 0.4  # the book is far from done when the server stops
            stopped = httpx.post(f"{url}/voxmith/books", data=_fields(),
                                 files={"book": ("restart.txt", TEN_SENTENCES)}, timeout=30).json()
            waiting = httpx.post(f"{url}/voxmith/books", data=_fields(),
                                 files={"book": ("waited.txt", TWO_SENTENCES)}, timeout=30).json()
            assert waiting["status"] == "queued"
            _wait_for_sentences(url, stopped["id"], 1)
        # leaving stopped the server: the book stopped at its next sentence
    finally:
        PacedToneEngine.delay_s = 0.0
    jobs_dir = studio.workspace.book_jobs_dir
    (jobs_dir / "damaged.json").write_text('{"kind": "voxmith.book-job", "schema": 1, "id": ')
    caplog.set_level("WARNING", logger="voxmith.serve")
    with running(studio) as url:
        listed = {job["id"]: job for job in httpx.get(f"{url}/voxmith/books").json()["books"]}
        assert "damaged.json" in caplog.text  # skipped, said, and the server is up
        # a finished book shows as it was, its files still served
        before = listed[finished["id"]]
        assert before["status"] == "done" and before["result"]["sentences"] == 2 and before["created"] is not None
        manifest = httpx.get(f"{url}/voxmith/books/{finished['id']}/files/manifest.json")
        assert manifest.status_code == 200 and len(manifest.json()["sentences"]) == 2
        # the one the stop interrupted, as the book's folder is now; its events end with that
        job = httpx.get(f"{url}/voxmith/books/{stopped['id']}").json()
        assert job == listed[stopped["id"]] and job["finished"] is not None
        assert _events(url, job["id"])[-1]["type"] == "book.interrupted"
        assert httpx.post(f"{url}/voxmith/books/nope/resume", timeout=30).status_code == 404
        _resume_reads_only_the_rest(url, job, studio.workspace.results_dir / "demo" / "restart-book")
        # the book that was waiting (an upload: kept for the job to resume) is interrupted too
        assert listed[waiting["id"]]["status"] == "interrupted" and listed[waiting["id"]]["started"] is None
        assert httpx.post(f"{url}/voxmith/books/{waiting['id']}/resume", timeout=30).status_code == 202
        assert _events(url, waiting["id"])[-1]["type"] == "book.done"


def test_a_book_job_of_a_killed_server_is_listed_interrupted_and_resumes(studio, tmp_path):
    """A crash: the server is killed (SIGKILL) while it reads a book; a server started on the same
    workspace lists the job as interrupted and resumes it."""
    home = studio.workspace.home
    port = _free_port()
    server = serve_process(home, port, output=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        job = httpx.post(f"{url}/voxmith/books", data=_fields(),
                         files={"book": ("crash.txt", TEN_SENTENCES)}, timeout=30).json()
        _wait_for_sentences(url, job["id"], 2)
        server.kill()
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
    with running(studio) as url:
        listed = {b["id"]: b for b in httpx.get(f"{url}/voxmith/books").json()["books"]}
        _resume_reads_only_the_rest(url, listed[job["id"]], studio.workspace.results_dir / "demo" / "crash-book")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
