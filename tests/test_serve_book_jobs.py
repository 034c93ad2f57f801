"""The book job registry of `voxmith serve` on its own (no server, no synthesis): a scripted `make`
stands in for the book, so what is under test is how a job's status and events change together, and
how its records in the workspace outlive the registry (a restart, a crash, a second server, damaged
records, the bound on jobs kept)."""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from pathlib import Path

import pytest

from voxmith.errors import VoxmithError
from voxmith.progress import Progress
from voxmith.serve import book_jobs
from voxmith.serve.book_jobs import BookCancelled, BookJobs
from voxmith.serve.book_records import BookJobStore
from voxmith.studio.book import BookRequest

LAST_EVENTS = {"done": "book.done", "failed": "book.failed", "cancelled": "book.cancelled"}


class CheckedLock:
    """A job's lock that checks, each time it is let go, what a reader could then see: a job that has
    ended already holds its last event (an event stream closes as soon as it sees the job ended)."""

    def __init__(self, job):
        self._lock, self.job, self.broken = threading.Lock(), job, []

    def __enter__(self):
        self._lock.acquire()

    def __exit__(self, *exc):
        job = self.job
        if job.ended and (not job.events or job.events[-1]["type"] != LAST_EVENTS[job.status]):
            self.broken.append((job.status, [e["type"] for e in job.events]))
        self._lock.release()


def _wait(condition, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


@pytest.mark.parametrize("outcome", ["done", "failed", "cancelled"])
def test_a_job_ends_together_with_its_last_event(tmp_path, outcome):
    go, entered = threading.Event(), threading.Event()

    def make(job):
        entered.set()
        go.wait(10)
        if outcome == "failed":
            raise VoxmithError("no such voice")
        if outcome == "cancelled":
            raise BookCancelled("cancelled")
        return "a result"

    jobs = BookJobs(make)
    try:
        first = jobs.submit(BookRequest(source=tmp_path / "a.txt", voice="v"), tmp_path / "a-book")
        entered.wait(10)  # the worker is inside make: nothing holds the job's lock now
        first.lock = checked = CheckedLock(first)
        # a second job waits behind the first and is cancelled while it waits
        second = jobs.submit(BookRequest(source=tmp_path / "b.txt", voice="v"), tmp_path / "b-book")
        second.lock = checked_second = CheckedLock(second)
        jobs.cancel(second)
        go.set()
        _wait(lambda: first.ended)
        assert first.status == outcome and first.events[-1]["type"] == LAST_EVENTS[outcome]
        assert second.status == "cancelled" and [e["type"] for e in second.events] == ["book.queued", "book.cancelled"]
        assert checked.broken == [] and checked_second.broken == []
    finally:
        jobs.shutdown(5)


# --- records kept across restarts (voxmith.serve.book_records) ----------------------------------

def _request(tmp_path, name: str) -> BookRequest:
    return BookRequest(source=tmp_path / f"{name}.txt", voice="v", engine="tone", settings={"f0_scale": 1.1},
                       seed=5, audio_format="wav")


def _ended(jobs, job):
    _wait(lambda: job.ended)
    return job


def test_a_restarted_registry_lists_the_jobs_of_a_crashed_one_and_starts_none(tmp_path):
    folder = tmp_path / "jobs"
    go, entered = threading.Event(), threading.Event()

    def make(job):
        if job.request.voice == "broken":
            raise VoxmithError("no such voice")
        if Path(job.request.source).stem == "long":
            job.progress(Progress("reading the book (sentences)", 1, 6, unit="sentence"))
            entered.set()
            go.wait(10)
        return "a result"

    first_store = BookJobStore(folder)
    first = BookJobs(make, store=first_store)
    try:
        done = _ended(first, first.submit(_request(tmp_path, "short"), tmp_path / "short-book"))
        failed = _ended(first, first.submit(dataclasses.replace(_request(tmp_path, "x"), voice="broken"),
                                            tmp_path / "x-book"))
        running = first.submit(_request(tmp_path, "long"), tmp_path / "long-book")
        waiting = first.submit(_request(tmp_path, "next"), tmp_path / "next-book")
        entered.wait(10)
        running.save()  # as a running job's record is rewritten with its progress every few seconds
        first_store.close()  # the server is gone (a crash: its jobs are not stopped, its lock is let go)

        started = []
        second = BookJobs(lambda job: started.append(job.id), store=BookJobStore(folder))
        listed = {job.id: job for job in second.list()}
        assert list(listed) == [done.id, failed.id, running.id, waiting.id]  # oldest first
        assert [listed[j.id].status for j in (done, failed, running, waiting)] == \
            ["done", "failed", "interrupted", "interrupted"]
        assert listed[failed.id].error == "no such voice"
        again = listed[running.id]
        assert again.request == running.request and again.folder == running.folder and again.finished is not None
        assert again.events[0]["done"] == 1 and again.events[0]["total"] == 6  # the progress it had
        assert again.events[-1]["type"] == "book.interrupted" and again.events[-1]["seq"] > running.next_seq
        time.sleep(0.2)
        assert started == []  # nothing is started without a client asking

        assert not second.resume(listed[done.id])  # only what did not finish resumes
        assert second.resume(again)
        _wait(lambda: again.ended)
        assert again.status == "done" and started == [running.id]
        assert [e["type"] for e in again.events][-4:] == ["book.interrupted", "book.queued", "book.started",
                                                          "book.done"]
        second.shutdown(5)
        third = BookJobs(lambda job: None, store=BookJobStore(folder))
        assert {job.id: job.status for job in third.list()}[running.id] == "done"
        third.shutdown(5)
    finally:
        go.set()
        first.shutdown(5)


def test_a_job_stopped_with_its_server_is_interrupted_and_a_live_servers_jobs_stay_its_own(tmp_path):
    folder = tmp_path / "jobs"
    go = threading.Event()

    def make(job):
        while not go.wait(0.01):
            job.progress(Progress("reading the book (sentences)", 0, 2, unit="sentence"))
        return "a result"

    one = BookJobs(make, store=BookJobStore(folder))
    try:
        job = one.submit(_request(tmp_path, "long"), tmp_path / "long-book")
        record = folder / f"{job.id}.json"
        # the status is set, then written: wait for the record (read before it, it still said "queued")
        _wait(lambda: job.status == "running" and json.loads(record.read_text())["status"] == "running")
        record_before = record.read_text()
        # a second server on the same workspace leaves the running job to the first (and does not touch it)
        two = BookJobs(make, store=BookJobStore(folder))
        assert two.list() == [] and record.read_text() == record_before
        two.shutdown(5)
        one.shutdown(5)
        assert job.status == "interrupted" and job.events[-1]["type"] == "book.interrupted"
        three_store = BookJobStore(folder)
        three = BookJobs(make, store=three_store)
        try:
            assert [(j.id, j.status) for j in three.list()] == [(job.id, "interrupted")]
            # the servers' own lock files do not pile up
            assert [p.name for p in (folder / ".owners").iterdir()] == [f"{three_store.owner}.lock"]
        finally:
            three.shutdown(5)
    finally:
        go.set()  # even when an assertion fails: a job left spinning holds a torch_threads body open
        one.shutdown(5)


def test_damaged_records_are_skipped_with_a_warning(tmp_path, caplog):
    folder = tmp_path / "jobs"
    kept = BookJobs(lambda job: "a result", store=BookJobStore(folder))
    good = _ended(kept, kept.submit(_request(tmp_path, "good"), tmp_path / "good-book"))
    kept.shutdown(5)
    record = json.loads((folder / f"{good.id}.json").read_text())
    (folder / "cut.json").write_text((folder / f"{good.id}.json").read_text()[:50])
    (folder / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (folder / "list.json").write_text("[1, 2]")
    (folder / "newer.json").write_text(json.dumps({**record, "id": "newer", "schema": 99}))
    (folder / "nostatus.json").write_text(json.dumps({**record, "id": "nostatus", "status": "exploded"}))
    (folder / "norequest.json").write_text(json.dumps({**record, "id": "norequest", "request": {"voice": 3}}))
    (folder / "renamed.json").write_text(json.dumps(record))  # holds another job's record
    (folder / "outside.json").write_text(json.dumps({**record, "id": "outside", "folder": "/etc"}))
    (folder / "elsewhere.json").write_text(json.dumps(  # its folder checked, but it would write elsewhere
        {**record, "id": "elsewhere", "request": {**record["request"], "output_dir": str(tmp_path / "other")}}))
    (folder / "oddprogress.json").write_text(json.dumps({**record, "id": "oddprogress", "progress": {"seq": "x"}}))
    (folder / f".{good.id}.json.x1y2.json").write_text("{")  # a write cut short by a crash: not a record
    caplog.set_level(logging.WARNING, logger="voxmith.serve")
    jobs = BookJobs(lambda job: "a result", store=BookJobStore(folder, books_root=tmp_path))
    try:
        # a progress that is not one is dropped, the job kept
        assert sorted(job.id for job in jobs.list()) == sorted([good.id, "oddprogress"])
        assert [e["type"] for e in jobs.get("oddprogress").events] == ["book.done"]
        warned = " ".join(r.getMessage() for r in caplog.records)
        for name in ("cut", "binary", "list", "newer", "nostatus", "norequest", "renamed", "outside", "elsewhere"):
            assert f"{name}.json" in warned, name
        assert "newer voxmith" in warned and ".x1y2" not in warned
    finally:
        jobs.shutdown(5)


def test_records_follow_the_bound_on_jobs_and_progress_is_written_only_now_and_then(tmp_path, monkeypatch):
    monkeypatch.setattr(book_jobs, "JOBS_KEPT", 3)
    monkeypatch.setattr(book_jobs, "PROGRESS_SAVE_S", 3600.0)
    folder = tmp_path / "jobs"
    store = BookJobStore(folder)
    writes, saved = [], []
    save = store.save
    # A job shows as ended before the worker has written its last record: wait for the writes.
    monkeypatch.setattr(store, "save",
                        lambda record: (writes.append((record.id, record.status)), save(record), saved.append(1)))

    def make(job):
        for done in range(200):
            job.progress(Progress("reading the book (sentences)", done, 200, unit="sentence"))
        return "a result"

    jobs = BookJobs(make, store=store)
    try:
        made = [_ended(jobs, jobs.submit(_request(tmp_path, f"b{k}"), tmp_path / f"b{k}-book")) for k in range(5)]
        _wait(lambda: len(saved) == 15)
        # per job (the next job may be queued before the last one's "done" is written):
        # 200 progress events each, no write for them
        assert [[status for job_id, status in writes if job_id == job.id] for job in made] == [
            ["queued", "running", "done"]] * 5
        kept = [job.id for job in made[-3:]]
        assert [job.id for job in jobs.list()] == kept
        assert sorted(p.stem for p in folder.glob("*.json")) == sorted(kept)  # the forgotten ones' records too
    finally:
        jobs.shutdown(5)
    restarted = BookJobs(make, store=BookJobStore(folder))
    try:
        assert [job.id for job in restarted.list()] == kept
    finally:
        restarted.shutdown(5)
