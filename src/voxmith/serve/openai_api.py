"""OpenAI's speech API: `POST /v1/audio/speech`, `GET /v1/models`, `GET /v1/audio/voices`.

Mapping onto the studio: `voice` is a voxmith voice; `model` is recorded, and picks the engine when
it names one (`piper-vc`, `tortoise`); OpenAI's own names (`tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`
and their dated snapshots such as `tts-1-1106`) get the default engine; any other name is refused
with the names that work (a mistyped engine would otherwise speak with the wrong one unnoticed);
`speed` becomes the engine's `length_scale` (engines without one only speak at speed 1);
`instructions` is recorded (no engine uses it yet). One take per sentence, unranked: chat clients
want the first words quickly (`/voxmith/speak` has every option of `voxmith speak`).
"""

from __future__ import annotations

import re
from typing import Literal, Optional, Union

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from voxmith.audio.encode import FORMATS, audio_format
from voxmith.engines import available_engines
from voxmith.engines.registry import DEFAULT_ENGINE, engine_class
from voxmith.errors import VoxmithError
from voxmith.serve.errors import ApiError
from voxmith.serve.speech import start_speech, stream_response
from voxmith.studio.speech import SpeakRequest

MAX_INPUT_CHARS = 4096  # as OpenAI
# OpenAI's own model names, listed so clients that offer only those still find something to pick.
OPENAI_MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
# OpenAI's dated snapshots of those names (`tts-1-1106`, `gpt-4o-mini-tts-2025-03-20`), which some
# clients send as they are.
_OPENAI_SNAPSHOT = re.compile(r"^(?:%s)(?:-\d[\d-]*)?$" % "|".join(re.escape(a) for a in OPENAI_MODEL_ALIASES))

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])


class VoiceRef(BaseModel):
    id: str


class SpeechBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field("tts-1", max_length=200, description="Recorded; an engine name picks that engine, OpenAI's names (tts-1, ...) "
                                                         "or an empty one the default one (any case).")
    input: str = Field(..., description=f"The text, up to {MAX_INPUT_CHARS} characters.")
    voice: Union[str, VoiceRef] = Field(..., description="A voxmith voice name (GET /v1/audio/voices).")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=0.25, le=4.0)
    instructions: Optional[str] = Field(None, max_length=MAX_INPUT_CHARS)
    stream_format: Literal["audio", "sse"] = "audio"
    # voxmith's extension (the OpenAI client's extra_body): a fixed seed makes the same audio again.
    seed: Optional[int] = Field(None, ge=0, lt=2 ** 32, description="voxmith extension: random when left out.")


def engine_for_model(model: str) -> str:
    """The engine a request's `model` asks for: a voxmith engine by name, the default engine for
    OpenAI's names and for an empty one (some clients send ""), both in any case as OpenAI takes
    its names ("Piper-VC", "TTS-1"); anything else is a 400 naming the choices."""
    engines = available_engines()
    asked = model.strip().lower()
    by_name = {name.lower(): name for name in engines}
    if asked in by_name:
        return by_name[asked]
    if not asked or _OPENAI_SNAPSHOT.match(asked):
        return DEFAULT_ENGINE
    raise ApiError(400, f"Unknown model '{model}'. Send a voxmith engine ({', '.join(engines)}) or one of "
                        f"OpenAI's names for the default engine, {DEFAULT_ENGINE} "
                        f"({', '.join(OPENAI_MODEL_ALIASES)}).", "model", "model_not_found")


def speed_settings(engine: str, speed: float) -> dict:
    """The engine settings that make it speak at `speed` (1 = as trained)."""
    settings_class = engine_class(engine).settings_class
    if speed == 1.0:
        return {}
    if "length_scale" not in settings_class.__dataclass_fields__:
        raise ApiError(400, f"The {engine} engine cannot change its speaking speed; send speed 1.0.", "speed")
    settings = {"length_scale": round(1.0 / speed, 4)}
    try:
        settings_class.from_dict(settings)
    except VoxmithError as err:
        allowed = _speed_range(settings_class)
        reach = f": send a speed from {allowed[0]:g} to {allowed[1]:g}" if allowed else f" ({err})"
        raise ApiError(400, f"speed {speed} is outside what the {engine} engine can do{reach}.", "speed") from None
    return settings


def _speed_range(settings_class) -> Optional[tuple]:
    """The speeds (OpenAI's 0.25-4.0, in steps of 0.05) the engine's length_scale accepts, as
    (slowest, fastest): the range a client should send, rather than the engine's length_scale bounds."""
    accepted = []
    for step in range(5, 81):
        speed = step / 20
        try:
            settings_class.from_dict({"length_scale": round(1.0 / speed, 4)})
            accepted.append(speed)
        except VoxmithError:
            continue
    return (accepted[0], accepted[-1]) if accepted else None


def check_voice(studio, name: str) -> None:
    try:
        exists = studio.voices.exists(name)
    except VoxmithError as err:  # not a valid name at all
        raise ApiError(400, str(err), "voice") from None
    if not exists:
        known = ", ".join(studio.voices.names()) or "none yet (add one with POST /voxmith/voices/NAME)"
        close = studio.voices.close_names(name)
        meant = f" Did you mean {' or '.join(repr(n) for n in close)}?" if close else ""
        raise ApiError(400, f"Unknown voice '{name}'.{meant} Voices: {known}.", "voice", "voice_not_found")


@router.post("/audio/speech", summary="Speak text (OpenAI's audio.speech)",
             responses={200: {"content": {f.content_type: {} for f in FORMATS.values()}}})
async def create_speech(body: SpeechBody, request: Request):
    studio, pool = request.app.state.studio, request.app.state.pool
    text = body.input
    if len(text) > MAX_INPUT_CHARS:
        raise ApiError(400, f"input is {len(text)} characters long; the limit is {MAX_INPUT_CHARS} (as OpenAI's). "
                            "Split the text into several requests.", "input", "string_above_max_length")
    if not any(c.isalnum() for c in text):  # blank, or only punctuation, emoji, control characters
        raise ApiError(400, "input has no words to speak: send the text to speak.", "input")
    voice = body.voice.id if isinstance(body.voice, VoiceRef) else body.voice
    check_voice(studio, voice)
    engine = engine_for_model(body.model)
    fmt = audio_format(body.response_format)
    speak = SpeakRequest(
        text=text, voice=voice, engine=engine, settings=speed_settings(engine, body.speed), seed=body.seed,
        candidates=1, rank=False,
        origin={"api": "openai", "model": body.model, "response_format": fmt.name, "speed": body.speed,
                **({"instructions": body.instructions} if body.instructions else {})},
    )
    run = await start_speech(studio, pool, speak, fmt, request)
    return stream_response(studio, run, fmt, sse=body.stream_format == "sse")


@router.get("/models", summary="Models (engines, and OpenAI's names for the default engine)")
async def list_models():
    names = available_engines() + [a for a in OPENAI_MODEL_ALIASES if a not in available_engines()]
    return {"object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "voxmith"} for name in names]}


@router.get("/audio/voices", summary="Voices in the workspace")
async def list_voices(request: Request):
    names = request.app.state.studio.voices.names()
    return {"object": "list", "voices": names,
            "data": [{"id": name, "name": name, "object": "voice"} for name in names]}
