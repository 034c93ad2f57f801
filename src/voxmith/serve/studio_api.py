"""voxmith's own endpoints under `/voxmith`: speak with every `voxmith speak` option, convert an
uploaded recording into a voice, voices (list, show, add by upload), results (list, fetch) and
reproduce.

Clients name things, never paths: a voice by its name, a result by its id ('VOICE/FILE.wav', as
returned by speak and the results list). Every id is resolved inside the workspace's results
folder and refused if it points anywhere else; reference clips (`--ref` paths) are not offered
here, upload a voice instead.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Literal, Optional, Union

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from voxmith.errors import VoxmithError
from voxmith.paths import canonical_name
from voxmith.serve.errors import ApiError
from voxmith.serve.speech import finish_speech, result_id, start_speech
from voxmith.serve.uploads import CHUNK_BYTES, upload_name
from voxmith.studio.ranking import RankingSettings
from voxmith.studio.conversion import ConvertRequest
from voxmith.studio.record import ConversionRecord, FinetuneChoice, ResultRecord
from voxmith.studio.results import list_results
from voxmith.studio.speech import MAX_SPEAK_TEXT_CHARS, SpeakRequest

router = APIRouter(prefix="/voxmith", tags=["voxmith"])

RESULT_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aac", ".json")


class Finetune(BaseModel):
    run: str
    checkpoint: Union[str, int] = "latest"


class SpeakBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # (The bound is checked in `speak`, so the refusal says how long the text is and where a longer one goes.)
    text: str = Field(..., min_length=1, description=f"Up to {MAX_SPEAK_TEXT_CHARS} characters; a longer text "
                                                     "is a book (POST /voxmith/books).")
    voice: str
    engine: Optional[str] = None
    candidates: int = Field(1, ge=1, le=16)
    seed: Optional[int] = Field(None, description="Default: random (recorded in the sidecar).")
    settings: Dict[str, Union[str, float, int, bool]] = Field(default_factory=dict,
                                                                description="Engine settings (voxmith engines).")
    rank: bool = Field(True, description="Score takes with the speaker encoder and Whisper.")
    max_wer: float = Field(0.15, ge=0.0, le=1.0)
    retries: int = Field(2, ge=0, le=10)
    finetune: Union[Finetune, Literal["stock", "voice"]] = Field(
        "voice", description="'voice': what the voice is set to use; 'stock': the engine's own weights; "
                             "or {run, checkpoint}.")


class ReproduceBody(BaseModel):
    result: str = Field(..., description="A result id ('VOICE/FILE.wav' or its '.json').")


def describe_result(studio, entry_path: Path, record: Union[ResultRecord, ConversionRecord]) -> dict:
    """A result as the API lists it (a conversion has no text or seed: null)."""
    rid = result_id(studio, entry_path)
    spoken = isinstance(record, ResultRecord)
    return {"id": rid, "audio_url": f"/voxmith/results/{rid}",
            "sidecar_url": f"/voxmith/results/{Path(rid).with_suffix('.json').as_posix()}",
            "text": record.text if spoken else None, "voice": record.voice.name if record.voice else None,
            "created": record.created, "duration_s": record.duration_s,
            "engine": {"name": record.engine_name, "version": record.engine_version},
            "seed": record.seed if spoken else None}


def resolve_result(studio, rid: str, suffixes=RESULT_SUFFIXES) -> Path:
    """A result id -> its file inside the results folder; anything else is 404."""
    root = studio.workspace.results_dir.resolve()
    missing = ApiError(404, f"No result '{rid}'. List them with GET /voxmith/results.", "result")
    try:  # a NUL byte or an over-long name is no result either, not a server error
        path = (root / rid).resolve()
        if rid.startswith("/") or not path.is_relative_to(root) or path.suffix.lower() not in suffixes \
                or not path.is_file():
            raise missing
    except (ValueError, OSError):
        raise missing from None
    return path


def sidecar_id(rid: str) -> str:
    """The sidecar's id of a result id ('VOICE/FILE.wav' -> 'VOICE/FILE.json'); an id with no file
    name ('', '.') stays as it is, for `resolve_result` to refuse."""
    path = Path(rid)
    return path.with_suffix(".json").as_posix() if path.name else rid


@router.post("/speak", summary="Speak with every option of `voxmith speak`; returns the result and its sidecar")
async def speak(body: SpeakBody, request: Request):
    studio, pool = request.app.state.studio, request.app.state.pool
    if len(body.text) > MAX_SPEAK_TEXT_CHARS:
        raise ApiError(400, f"text is {len(body.text)} characters long; the limit is {MAX_SPEAK_TEXT_CHARS}. Read a "
                            "longer text as a book: POST /voxmith/books (chapter by chapter, resumable).", "text",
                       "string_above_max_length")
    finetune = FinetuneChoice.voice_setting() if body.finetune == "voice" else \
        FinetuneChoice.stock() if body.finetune == "stock" else \
        FinetuneChoice.of_run(body.finetune.run, body.finetune.checkpoint)
    speak_request = SpeakRequest(
        text=body.text, voice=body.voice, engine=body.engine, settings=dict(body.settings), seed=body.seed,
        candidates=body.candidates, ranking=RankingSettings(max_wer=body.max_wer, regenerate_limit=body.retries),
        rank=body.rank, finetune=finetune, origin={"api": "voxmith"},
    )
    run = await start_speech(studio, pool, speak_request, None, request, wait_for_audio=False)
    result = await finish_speech(run)
    return {**describe_result(studio, result.path, result.record), "sidecar": result.sidecar}


@router.post("/reproduce", summary="Make a result again from its sidecar (same seed: same audio)")
async def reproduce(body: ReproduceBody, request: Request):
    studio, pool = request.app.state.studio, request.app.state.pool
    sidecar_path = resolve_result(studio, sidecar_id(body.result), (".json",))
    job = pool.submit(lambda _job: _reproduce(studio, sidecar_path))  # through the pool like any synthesis
    try:
        result = await job.next()
    finally:
        job.cancel()
    return {**describe_result(studio, result.path, result.record), "sidecar": result.sidecar}


def _reproduce(studio, sidecar_path: Path):
    yield studio.reproduce(sidecar_path)


@router.post("/convert", summary="Convert an uploaded recording (anyone speaking) into a voice; returns the "
                                 "result and its sidecar")
async def convert(request: Request, recording: UploadFile = File(...), voice: str = Form(...),
                  engine: Optional[str] = Form(None),
                  settings: str = Form("{}", description="The engine's conversion settings as a JSON object.")):
    studio, pool = request.app.state.studio, request.app.state.pool
    try:
        chosen = json.loads(settings)
    except json.JSONDecodeError:
        chosen = None
    if not isinstance(chosen, dict):
        raise ApiError(400, 'settings must be a JSON object, e.g. {"f0_scale": 1.1}.', "settings")
    uploads = request.app.state.uploads
    source = await uploads.keep(recording)
    convert_request = ConvertRequest(source=source, voice=voice, engine=engine or None, settings=chosen,
                                     origin={"api": "voxmith", "upload": recording.filename or source.name})
    job, refused = None, False
    try:
        job = pool.submit(lambda _job: _convert(studio, convert_request))
        result = await job.next()
    except VoxmithError as err:  # nothing was made: name the upload as the client knows it
        refused = True
        raise ApiError(400, str(err).replace(str(source), recording.filename or "the recording")) from None
    finally:
        if job is not None:
            job.cancel()
        # Removed only when nothing can still read it: the pool refused the job, or the conversion
        # refused the recording. Kept for a result, and when the request ended while the job may
        # still be converting (a cancelled request: job.cancel cannot stop a running conversion).
        uploads.release(source, made_result=not (job is None or refused))
    return {**describe_result(studio, result.path, result.record), "sidecar": result.sidecar}


def _convert(studio, convert_request: ConvertRequest):
    yield studio.convert(convert_request)


@router.get("/results", summary="Results (spoken and converted), newest first")
async def results(request: Request, limit: int = 50, voice: Optional[str] = None,
                  kind: Literal["all", "speech", "conversion"] = "all"):
    studio = request.app.state.studio
    limit = max(1, min(limit, 1000))
    entries = await run_in_threadpool(list_results, studio.workspace.results_dir,
                                      limit if kind != "conversion" else 1_000_000, kind != "speech")
    if kind == "conversion":
        entries = [e for e in entries if isinstance(e.record, ConversionRecord)][:limit]
    return {"results": [describe_result(studio, e.audio_path, e.record) for e in entries
                        if voice is None or (e.record.voice is not None
                                             and canonical_name(e.record.voice.name) == canonical_name(voice))]}


@router.get("/results/{rid:path}", summary="A result's audio or sidecar (or one of its takes)")
async def result_file(rid: str, request: Request):
    path = resolve_result(request.app.state.studio, rid)
    return FileResponse(path, filename=path.name)


@router.get("/voices", summary="Voices in the workspace")
async def voices(request: Request):
    studio = request.app.state.studio
    return {"voices": [_voice_summary(v) for v in studio.voices.list()]}


def _voice_summary(voice) -> dict:
    meta = voice.listed_metadata()
    return {"name": voice.name, "clips": [p.name for p in voice.clip_paths], "created": meta.get("created"),
            "finetune": meta.get("finetune")}


@router.get("/voices/{name}", summary="A voice; with analyse=true its full report (levels, SNR, consistency, advice)")
async def show_voice(name: str, request: Request, analyse: bool = False):
    studio = request.app.state.studio
    if not studio.voices.exists(name):  # (a malformed name is refused there: 400)
        try:  # an unknown voice is 404, in the library's words (the voices there are, close names)
            studio.voices.get(name, to_create=False)
        except VoxmithError as err:
            raise ApiError(404, str(err), "name") from None
    voice = studio.voices.get(name)
    summary = _voice_summary(voice)
    if analyse:
        summary["report"] = (await run_in_threadpool(studio.analyse_voice, name)).to_dict()
    return summary


@router.post("/voices/{name}", summary="Create a voice from uploaded clips (or append, or replace it)")
async def add_voice(name: str, request: Request, files: List[UploadFile] = File(...),
                    append: bool = Form(False), replace: bool = Form(False)):
    studio = request.app.state.studio
    if append and replace:
        raise ApiError(400, "append and replace contradict each other; pick one.")
    if not files:
        raise ApiError(400, "Upload at least one clip (form field 'files').", "files")
    # Uploads go to a private temporary folder under their base names only; the library copies
    # them into the voice after checking every clip, exactly as `voxmith voices add` does.
    folder = Path(tempfile.mkdtemp(prefix="voxmith-upload-"))
    try:
        paths = []
        for i, upload in enumerate(files):
            # Without a name of its own an upload gets no extension: the library names it after the
            # format it decodes as (a FLAC sent without a file name is stored as 'clip1.flac').
            base = upload_name(upload.filename, f"clip{i + 1}")
            target = folder / f"{i:03d}" / base
            target.parent.mkdir()
            with open(target, "wb") as out:
                while chunk := await upload.read(CHUNK_BYTES):
                    out.write(chunk)
            paths.append(target)
        try:
            voice = await run_in_threadpool(lambda: studio.voices.add(name, paths, force=replace, append=append))
        except VoxmithError as err:
            message = str(err)
            for path in paths:  # name the uploads as the client knows them
                message = message.replace(str(path), path.name)
            # ...and the options as this endpoint takes them (the library names the CLI's flags)
            message = message.replace("Use --append", "Send append=true").replace("or --force", "or replace=true")
            raise ApiError(400, message, "files") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return _voice_summary(voice)
