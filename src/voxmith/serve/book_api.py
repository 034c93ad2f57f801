"""`/voxmith/books`: read a book into a voice in the background, as `voxmith book` does.

    POST   /voxmith/books                      start: an uploaded book (`book`) or a text file in the
                                               workspace (`path`, relative to it) -> 202 with the job id
    GET    /voxmith/books                      the jobs this server knows (newest last), those of
                                               earlier servers on this workspace included
    GET    /voxmith/books/{id}                 status: queued/running/done/failed/cancelled/interrupted,
                                               the latest progress, the error, and when done the files
    GET    /voxmith/books/{id}/events          progress as server-sent events (`?after=SEQ` resumes)
    GET    /voxmith/books/{id}/files/{name}    a file of the finished book (book.m4b, chapters/..., manifest.json)
    DELETE /voxmith/books/{id}                 cancel (finished sentences are kept: starting the same
                                               book again resumes it)
    POST   /voxmith/books/{id}/resume          read the rest of an interrupted (stopped with its
                                               server), cancelled or failed job: 202, the same job
    POST   /voxmith/books/{id}/sentences/{sentence}/redo
                                               make one sentence of a finished book again (new seeds;
                                               its chapter and the joined book are rebuilt), as
                                               `voxmith book --redo`: 202 with a new job

The book is made in its usual folder, results/VOICE/<book>-book/, so the CLI, the web UI and this
API resume each other's books. Clients name a workspace file, never a path outside the workspace;
uploads and workspace files are limited to `ServeConfig.max_book_bytes`.

Jobs outlive the server (`book_jobs`, `book_records`): after a restart, or a crash, the list shows
them again, a job that was waiting or being read as "interrupted", which `resume` continues. A
restarted server starts nothing by itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, StreamingResponse

from voxmith.errors import VoxmithError
from voxmith.serve.book_jobs import RESUMABLE, BookJob
from voxmith.serve.errors import ApiError
from voxmith.serve.speech import result_id
from voxmith.studio.book import BOOK_FORMATS, BookRequest, finished_sentences
from voxmith.studio.ranking import RankingSettings
from voxmith.studio.record import FinetuneChoice
from voxmith.text.book import PauseSettings

router = APIRouter(prefix="/voxmith/books", tags=["books"])

BOOK_SUFFIXES = (".txt", ".md", ".markdown", ".epub")
# What a client may fetch from a book's folder: its audio, manifest, chapter list and cue sheet
# (not the per-sentence arrays kept for resuming).
FILE_SUFFIXES = (".m4b", ".mp3", ".wav", ".flac", ".json", ".cue")
EVENT_POLL_S = 0.2


def _json_form(value: str, name: str, example: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise ApiError(400, f"{name} must be JSON, e.g. {example}.", name) from None


def _finetune(value: str) -> FinetuneChoice:
    if value in ("voice", "stock"):
        return FinetuneChoice.voice_setting() if value == "voice" else FinetuneChoice.stock()
    chosen = _json_form(value, "finetune", '"voice", "stock" or {"run": "alice-ft", "checkpoint": "latest"}')
    if not isinstance(chosen, dict) or not isinstance(chosen.get("run"), str):
        raise ApiError(400, 'finetune must be "voice", "stock" or {"run": RUN, "checkpoint": ...}.', "finetune")
    return FinetuneChoice.of_run(chosen["run"], chosen.get("checkpoint", "latest"))


def _workspace_file(studio, relative: str, limit: int) -> Path:
    """A book file named relative to the workspace, refused when it resolves anywhere outside it."""
    home = studio.workspace.home.resolve()
    try:
        path = (home / relative).resolve()
    except (ValueError, OSError):  # a NUL byte, a name too long: no such file can be there
        raise ApiError(400, f"{relative!r} cannot name a file.", "path") from None
    if Path(relative).is_absolute() or not path.is_relative_to(home):
        raise ApiError(403, f"'{relative}' is outside the workspace; name a file inside it, relative to it "
                            "(e.g. books/novel.md), or upload the book.", "path")
    try:
        is_file = path.is_file()
    except OSError:  # a name too long for the file system
        raise ApiError(400, f"{relative!r} cannot name a file.", "path") from None
    if not is_file:
        raise ApiError(404, f"There is no file '{relative}' in the workspace.", "path")
    if path.suffix.lower() not in BOOK_SUFFIXES:
        raise ApiError(400, f"A book is a {', '.join(BOOK_SUFFIXES)} file, not '{path.name}'.", "path")
    if path.stat().st_size > limit:
        raise ApiError(413, f"'{relative}' is larger than the server's book limit of {limit // 2 ** 20} MB.", "path")
    return path


def _when(seconds: Optional[float]) -> Optional[str]:
    return None if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(seconds))


def job_status(studio, job: BookJob) -> dict:
    """A job as the API shows it."""
    with job.lock:
        status, error, result = job.status, job.error, job.result
        progress = next((e for e in reversed(job.events) if e["type"] == "book.progress"), None)
    out = {"id": job.id, "status": status, "voice": job.request.voice, "book": Path(job.request.source).name,
           "redo": job.redo,
           "folder": result_id(studio, job.folder), "created": _when(job.created), "started": _when(job.started),
           "finished": _when(job.finished), "progress": progress, "error": error,
           "status_url": f"/voxmith/books/{job.id}", "events_url": f"/voxmith/books/{job.id}/events"}
    if status in RESUMABLE:  # what resuming starts from: the book's folder as it is now
        out["sentences_done"] = finished_sentences(job.folder)
        out["resume_url"] = f"/voxmith/books/{job.id}/resume"
    if result is not None:
        record = result.record
        files = [result.book_path.name, "manifest.json", *(c.file for c in record.chapters)]
        files += [name for name in ("chapters.json", "book.cue") if (job.folder / name).is_file()]
        out["result"] = {
            "duration_s": record.duration_s, "chapters": len(record.chapters), "sentences": len(record.sentences),
            "review": list(record.review), "finetune": record.finetune.to_json() if record.finetune else None,
            "files": [{"name": name, "url": f"/voxmith/books/{job.id}/files/{name}"} for name in files]}
    return out


@router.post("", status_code=202, summary="Start reading a book (upload or a workspace text file); returns the job")
async def start_book(request: Request, voice: str = Form(...), book: Optional[UploadFile] = File(None),
                     path: Optional[str] = Form(None, description="A .txt/.md/.epub file in the workspace, "
                                                                    "relative to it."),
                     engine: Optional[str] = Form(None), seed: Optional[int] = Form(None),
                     candidates: int = Form(1), rank: bool = Form(True),
                     max_wer: float = Form(0.15, ge=0.0, le=1.0),  # the bounds of /voxmith/speak
                     retries: int = Form(2, ge=0, le=10), audio_format: str = Form("m4b", alias="format"),
                     settings: str = Form("{}", description="Engine settings as a JSON object."),
                     finetune: str = Form("voice", description='"voice", "stock" or {"run", "checkpoint"} as JSON.'),
                     sentence_pause: float = Form(0.35), paragraph_pause: float = Form(0.8),
                     chapter_pause: float = Form(2.0)):
    app = request.app
    studio, limit = app.state.studio, app.state.config.max_book_bytes
    if (book is None) == (path is None):
        raise ApiError(400, "Send the book as an upload (form field 'book') or name a file in the workspace "
                            "('path'): one of them.", "book")
    if audio_format not in BOOK_FORMATS:
        raise ApiError(400, f"format must be one of {', '.join(BOOK_FORMATS)}.", "format")
    chosen = _json_form(settings, "settings", '{"f0_scale": 1.1}')
    if not isinstance(chosen, dict):
        raise ApiError(400, 'settings must be a JSON object, e.g. {"f0_scale": 1.1}.', "settings")
    weights = _finetune(finetune)
    upload = None
    if book is not None:
        suffix = Path((book.filename or "").replace("\\", "/")).suffix.lower()
        if suffix not in BOOK_SUFFIXES:
            raise ApiError(400, f"A book is a {', '.join(BOOK_SUFFIXES)} file; send it under its name "
                                f"(got '{book.filename}').", "book")
        upload = source = await app.state.uploads.keep(book, max_bytes=limit, what="book")
    else:
        source = _workspace_file(studio, path, limit)
    try:
        book_request = BookRequest(
            source=source, voice=voice, engine=engine or None, settings=chosen, seed=seed, candidates=candidates,
            ranking=RankingSettings(max_wer=max_wer, regenerate_limit=retries), rank=rank,
            pauses=PauseSettings(sentence_pause, paragraph_pause, chapter_pause), audio_format=audio_format,
            finetune=weights)
        book_request.validate()  # the rest (voice, engine, weights) is checked when the job starts
        studio.voices.get(voice)
        job = app.state.books.submit(book_request, studio.book_folder(book_request), upload,
                                     on_end=_release_upload(app, upload) if upload is not None else None)
    except BaseException:
        if upload is not None:
            app.state.uploads.release(upload, made_result=False)
        raise
    return job_status(studio, job)


def _release_upload(app, upload: Path):
    """What a job made from an upload calls when it ends: the upload is kept while the job runs, and
    after it only when the job started the book's folder (book.json: the manifest names the upload,
    and the folder resumes from it) or was interrupted by the server stopping (its record names the
    upload, to resume from); a job that made nothing leaves nothing behind. The bookkeeping of
    uploads lives in the event loop's thread, so the release is handed to it."""
    loop = asyncio.get_running_loop()

    def on_end(job: BookJob) -> None:
        started = job.status == "interrupted" or (job.folder / "book.json").is_file()
        try:
            loop.call_soon_threadsafe(app.state.uploads.release, upload, started)
        except RuntimeError:  # the loop has closed (the server stopped): nothing to keep count for
            pass

    return on_end


def _job(request: Request, job_id: str) -> BookJob:
    job = request.app.state.books.get(job_id)
    if job is None:
        raise ApiError(404, f"No book job '{job_id}' on this server (the oldest finished jobs are forgotten, "
                            "and a job of another server running on this workspace is listed by that server; "
                            "a book's files stay in the workspace).", "id")
    return job


@router.get("", summary="The book jobs this server knows, those of earlier servers on this workspace included")
async def list_books(request: Request):
    studio = request.app.state.studio
    return {"books": [job_status(studio, job) for job in request.app.state.books.list()]}


@router.get("/{job_id}", summary="A book job's status, latest progress and, when done, its files",
            description="`status` is queued, running, done, failed, cancelled, or interrupted: stopped with its "
                        "server (a restart or a crash; jobs are listed again after one). An interrupted, "
                        "cancelled or failed job has `sentences_done` (what its book's folder holds now) and "
                        "`resume_url`, to read the rest.")
async def book_status(job_id: str, request: Request):
    return job_status(request.app.state.studio, _job(request, job_id))


@router.delete("/{job_id}", summary="Cancel a book job (its finished sentences are kept)")
async def cancel_book(job_id: str, request: Request):
    job = _job(request, job_id)
    request.app.state.books.cancel(job)
    return job_status(request.app.state.studio, job)


@router.post("/{job_id}/resume", status_code=202,
             summary="Read the rest of an interrupted, cancelled or failed book job; returns the same job")
async def resume_book(job_id: str, request: Request):
    """The book's folder keeps every finished sentence: only the missing ones are read (the same
    settings and seed, so the book is what an uninterrupted run would have made)."""
    app = request.app
    job = _job(request, job_id)
    with job.lock:
        status = job.status
    if status not in RESUMABLE:
        why = "is still being read" if status in ("queued", "running") else "is done (redo a sentence instead)"
        raise ApiError(409, f"The book {why}; only an interrupted, cancelled or failed job resumes.", "id")
    if not Path(job.request.source).is_file():
        raise ApiError(409, f"The book's file '{Path(job.request.source).name}' is no longer there; start the book "
                            "again (the same file and options: its finished sentences are kept).", "id")
    if not app.state.books.resume(job):  # another request resumed it first
        raise ApiError(409, "The book job has already been resumed.", "id")
    return job_status(app.state.studio, job)


@router.post("/{job_id}/sentences/{sentence_id}/redo", status_code=202,
             summary="Make one sentence of a finished book again (as `voxmith book --redo`); returns a new job")
async def redo_sentence(job_id: str, sentence_id: str, request: Request):
    app = request.app
    job = _job(request, job_id)
    with job.lock:
        status, finished = job.status, job.result
    if status == "done" and finished is None:
        raise ApiError(409, "The book's folder no longer holds the finished book (its manifest is gone or "
                            "damaged); start the book again.", "id")
    if status != "done":
        what = "is still being read" if status in ("queued", "running") else f"was not finished ({status})"
        raise ApiError(409, f"The book {what}; a sentence can be made again once the book is done"
                            f"{'' if status in ('queued', 'running') else ' (resume it to finish it)'}.", "id")
    known = [s.id for s in finished.record.sentences]
    if sentence_id not in known:
        example = f" (its ids run from {known[0]} to {known[-1]}; the manifest lists them)" if known else ""
        raise ApiError(404, f"There is no sentence '{sentence_id}' in this book{example}.", "sentence_id")
    if not Path(job.request.source).is_file():
        raise ApiError(409, f"The book's file '{Path(job.request.source).name}' is no longer there; start the book "
                            "again (same file and options: it resumes at once) and redo the sentence in that job.",
                       "id")
    redo = app.state.books.submit(job.request, job.folder, upload=job.upload, redo=sentence_id)  # its errors name the upload
    return job_status(app.state.studio, redo)


@router.get("/{job_id}/events", summary="A book job's progress as server-sent events, until it ends")
async def book_events(job_id: str, request: Request, after: int = -1):
    job = _job(request, job_id)
    last = request.headers.get("last-event-id")
    if last is not None and last.lstrip("-").isdigit():
        after = int(last)

    async def events():
        seen = after
        while True:
            ended = job.ended  # read before the events: a job ends together with its last event (BookJob.end)
            for event in job.events_after(seen):
                seen = event["seq"]
                yield f"id: {seen}\ndata: {json.dumps(event)}\n\n".encode()
            if ended and not job.events_after(seen):
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(EVENT_POLL_S)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.get("/{job_id}/files/{name:path}", summary="A file of a finished book")
async def book_file(job_id: str, name: str, request: Request):
    job = _job(request, job_id)
    folder = job.folder.resolve()
    try:
        path = (folder / name).resolve()
        found = not name.startswith("/") and path.is_relative_to(folder) and path.suffix.lower() in FILE_SUFFIXES \
            and path.is_file() and path.parent.name != "sentences"
    except (ValueError, OSError):  # a NUL byte, a name too long
        found = False
    if not found:
        raise ApiError(404, f"No file {name!r} in this book (the status lists its files).", "name")
    return FileResponse(path, filename=path.name)


def make_book(studio, job: BookJob):
    """What the book worker runs for a job."""
    try:
        return studio.book(job.request, redo=job.redo, progress=job.progress)
    except VoxmithError as err:  # name the upload as the client sent it, not where it is kept
        if job.upload is not None and str(job.upload) in str(err):
            raise VoxmithError(str(err).replace(str(job.upload), job.upload.name)) from None
        raise
