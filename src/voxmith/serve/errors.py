"""Errors in OpenAI's JSON shape, `{"error": {"message", "type", "param", "code"}}`, for every route,
so clients written for OpenAI show voxmith's messages as they are."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from voxmith.errors import VoxmithError
from voxmith.serve.pool import PoolClosed, PoolFull

log = logging.getLogger("voxmith.serve")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          429: "rate_limit_error", 503: "server_busy_error"}


class ApiError(Exception):
    """An error with its HTTP status, raised by the routes."""

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def error_body(status: int, message: str, param: Optional[str] = None, code: Optional[str] = None) -> dict:
    return {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "param": param,
                      "code": code}}


def error_response(status: int, message: str, param: Optional[str] = None, code: Optional[str] = None,
                   headers: Optional[dict] = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param, code), status_code=status, headers=headers)


def _validation_message(err: RequestValidationError) -> tuple[str, Optional[str]]:
    problems, param = [], None
    for item in err.errors():
        # The body as a whole is wrong: say so in words, not as pydantic's "0: JSON decode error".
        if item.get("type") == "json_invalid":
            where = (item.get("ctx") or {}).get("error", "")
            return (f"The request body is not valid JSON ({where or item.get('msg', 'decode error')}); send a "
                    "JSON object with Content-Type: application/json."), None
        if item.get("type") in ("model_attributes_type", "dict_type") and \
                [p for p in item.get("loc", ()) if p != "body"] == []:
            return ("The request body must be a JSON object (e.g. {\"voice\": ..., \"input\": ...}) sent with "
                    "Content-Type: application/json."), None
        where = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")]
        param = param or (".".join(where) or None)
        problems.append(f"{'.'.join(where) or 'request body'}: {item.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(problems) + ".", param


def without_paths(request: Request, message: str) -> str:
    """`message` with the server's own folders named, not spelt out: a client (even one holding the
    token) learns nothing of the machine's layout from an error. The workspace is '<workspace>', the
    temporary folder (uploads) '<temp>'."""
    studio = getattr(request.app.state, "studio", None)
    home = getattr(getattr(studio, "workspace", None), "home", None)
    folders = []
    if home is not None:
        folders += [(str(home), "<workspace>"), (str(Path(home).resolve()), "<workspace>")]
    temp = tempfile.gettempdir()
    folders += [(temp, "<temp>"), (str(Path(temp).resolve()), "<temp>")]
    for folder, name in sorted(folders, key=lambda f: -len(f[0])):  # the longest (most precise) first
        if len(folder) > 1:
            message = message.replace(folder, name)
    return message


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError):
        return error_response(err.status, without_paths(request, err.message), err.param, err.code)

    @app.exception_handler(PoolFull)
    async def busy(_request: Request, err: PoolFull):
        return error_response(503, str(err), code="server_busy", headers={"Retry-After": str(err.retry_after_s)})

    @app.exception_handler(PoolClosed)
    async def closing(_request: Request, err: PoolClosed):
        return error_response(503, str(err), code="shutting_down", headers={"Retry-After": "30"})

    @app.exception_handler(VoxmithError)
    async def studio_error(request: Request, err: VoxmithError):
        return error_response(400, without_paths(request, str(err)))

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, err: RequestValidationError):
        message, param = _validation_message(err)
        return error_response(400, message, param)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, err: HTTPException):
        message = err.detail if isinstance(err.detail, str) else "Request failed."
        if err.status_code == 404 and message == "Not Found":
            message = "No such endpoint. See /docs for the API."
        return error_response(err.status_code, message, headers=getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception):
        log.exception("unexpected error")
        return error_response(500, without_paths(request, f"Unexpected {type(err).__name__}: {err}. This is a bug "
                                                          "in voxmith; the server log has the details."))
