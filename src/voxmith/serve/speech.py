"""Running a `SpeakRequest` in the worker pool and streaming its audio to an HTTP client.

The job (a worker thread) takes the engine's lock, opens the studio's `SpeechStream`, encodes each
finished sentence, and hands the bytes to the event loop. The route waits for the first sentence
before answering, so a request that fails early (unknown setting, unusable voice) still gets a
proper JSON error; after that the audio flows sentence by sentence. A client that goes away
cancels the job: synthesis stops after the sentence in progress and no file is written.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, List, Optional

from starlette.requests import Request
from starlette.responses import StreamingResponse

from voxmith.audio.encode import AudioFormat, StreamEncoder
from voxmith.serve.errors import ApiError, error_body
from voxmith.serve.pool import Job, SynthesisPool
from voxmith.studio.speech import SpeakRequest, SpeakResult

log = logging.getLogger("voxmith.serve")


@dataclass
class Started:
    sample_rate_hz: int
    output: Path  # where the result will be written (its name is reserved)


@dataclass
class Chunk:
    data: bytes
    sentence: int  # index of the sentence these bytes end with; -1 for the encoder's tail
    sentences: int


@dataclass
class Finished:
    result: SpeakResult


def speech_job(studio, pool: SynthesisPool, request: SpeakRequest,
               fmt: Optional[AudioFormat]) -> Callable[[Job], object]:
    """The job for `pool.submit`: Started, a Chunk per sentence (when `fmt` is given), Finished."""

    def run(job: Job):
        if job.cancelled.is_set():
            return
        stream = studio.speak_stream(request)
        try:
            encoder = StreamEncoder(fmt, stream.sample_rate_hz) if fmt else None
            yield Started(stream.sample_rate_hz, stream.output)
            for piece in stream:
                if encoder is not None:
                    yield Chunk(encoder.encode(piece.samples), piece.index, piece.count)
            if encoder is not None:
                yield Chunk(encoder.finish(), -1, stream.sentence_count)
            yield Finished(stream.result)
        finally:
            stream.close()
    return run


class SpeechRun:
    """A submitted speech job whose first events were already read; `close()` when done with it."""

    def __init__(self, job: Job, started: Started, early: List[object], text: str, watcher: asyncio.Task):
        self.job, self.started, self._early, self.text, self._watcher = job, started, early, text, watcher

    def close(self) -> None:
        """Stop the job if it still runs, and stop watching for the client's disconnect."""
        self._watcher.cancel()
        self.job.cancel()

    async def events(self) -> AsyncIterator[object]:
        for event in self._early:
            yield event
        self._early = []
        while True:
            try:
                yield await self.job.next()
            except StopAsyncIteration:
                return


async def start_speech(studio, pool: SynthesisPool, request: SpeakRequest, fmt: Optional[AudioFormat],
                       http_request: Request, wait_for_audio: bool = True) -> SpeechRun:
    """Submit the job and wait until it has started (and made its first sentence, with
    `wait_for_audio`); errors until then are raised here, to become the HTTP answer. From now on a
    client that goes away (even while waiting in the queue) cancels the job."""
    job = pool.submit(speech_job(studio, pool, request, fmt))
    watcher = asyncio.create_task(_cancel_on_disconnect(http_request, job))
    try:
        started = await job.next()
        early = [await job.next()] if wait_for_audio else []
    except StopAsyncIteration:  # cancelled before it began: the client left
        watcher.cancel()
        raise ApiError(499, "The client closed the request.") from None
    except BaseException:
        watcher.cancel()
        job.cancel()
        raise
    return SpeechRun(job, started, early, request.text, watcher)


async def finish_speech(run: SpeechRun) -> SpeakResult:
    try:
        async for event in run.events():
            if isinstance(event, Finished):
                return event.result
    finally:
        run.close()
    raise RuntimeError("the speech job ended without a result")


async def _cancel_on_disconnect(request: Request, job: Job) -> None:
    """The body was read already, so the next message is the client's disconnect (if it comes)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            job.cancel()
            return


def result_id(studio, path: Path) -> str:
    """A result's name for clients: its path relative to the results folder ('VOICE/FILE.wav')."""
    try:
        return path.relative_to(studio.workspace.results_dir).as_posix()
    except ValueError:
        return path.name


def stream_response(studio, run: SpeechRun, fmt: AudioFormat, sse: bool) -> StreamingResponse:
    """The audio as it is made: encoded bytes, or server-sent events with base64 deltas."""
    async def audio_bytes() -> AsyncIterator[bytes]:
        try:
            async for event in run.events():
                if isinstance(event, Chunk) and event.data:
                    yield event.data
        finally:
            run.close()

    async def sse_events() -> AsyncIterator[bytes]:
        total = 0
        try:
            async for data in audio_bytes():
                total += len(data)
                delta = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
                yield f"data: {json.dumps(delta)}\n\n".encode()
        except Exception as err:  # headers are sent: the error becomes the last event
            log.warning("speech stream failed: %s", err)
            yield f"data: {json.dumps({'type': 'error', **error_body(500, str(err))})}\n\n".encode()
            return
        # OpenAI reports tokens; the nearest honest counts here are characters in and bytes out.
        usage = {"input_tokens": len(run.text), "output_tokens": total, "total_tokens": len(run.text) + total}
        done = {"type": "speech.audio.done", "usage": usage}
        yield f"data: {json.dumps(done)}\n\n".encode()

    headers = {"X-Voxmith-Result": result_id(studio, run.started.output),
               "X-Sample-Rate": str(run.started.sample_rate_hz), "Cache-Control": "no-store"}
    if sse:
        return StreamingResponse(sse_events(), media_type="text/event-stream", headers=headers)
    return StreamingResponse(audio_bytes(), media_type=fmt.content_type, headers=headers)
