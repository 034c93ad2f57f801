"""ASGI middleware of the API: the bearer token, and limits on request body size.

Both answer in OpenAI's error shape. The Host/Origin policy against DNS rebinding is
`voxmith.http_access.HostOriginGuard`, shared with the web UI.
"""

from __future__ import annotations

import json
import secrets
from typing import Iterable, Optional, Tuple

from starlette.exceptions import HTTPException

from voxmith.serve.errors import error_body


async def send_json_error(send, status: int, message: str, code: Optional[str] = None,
                          headers: Tuple[Tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps(error_body(status, message, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> Optional[str]:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class TokenGuard:
    """Every request must carry `Authorization: Bearer TOKEN` (compared in constant time), except
    under `open_prefixes` (the API docs; the mounted web UI, which asks for the token itself)."""

    def __init__(self, app, token: str, open_prefixes: Iterable[str] = ()):
        self.app, self.token, self.open_prefixes = app, token.encode(), tuple(open_prefixes)

    def _authorised(self, scope) -> bool:
        scheme, _, given = (_header(scope, b"authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), self.token)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"].startswith(self.open_prefixes) or self._authorised(scope):
            return await self.app(scope, receive, send)
        await send_json_error(send, 401, "Missing or wrong API key: send 'Authorization: Bearer TOKEN' with the "
                                         "token the server was started with (--token).", code="invalid_api_key",
                              headers=((b"www-authenticate", b"Bearer"),))


class BodyLimit:
    """Refuses request bodies over `max_bytes` (`upload_max_bytes` under `upload_prefixes`): by the
    declared Content-Length at once, and by counting a chunked body as it arrives."""

    def __init__(self, app, max_bytes: int, upload_max_bytes: int, upload_prefixes: Iterable[str] = ()):
        self.app, self.max_bytes, self.upload_max_bytes = app, max_bytes, upload_max_bytes
        self.upload_prefixes = tuple(upload_prefixes)

    def _limit(self, scope) -> int:
        return self.upload_max_bytes if scope["path"].startswith(self.upload_prefixes) else self.max_bytes

    def _message(self, limit: int) -> str:
        size = f"{limit // 2 ** 20} MB" if limit >= 2 ** 20 else f"{limit // 1024} KB"
        return f"The request body is larger than the server's limit of {size}."

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit(scope)
        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > limit:
            return await send_json_error(send, 413, self._message(limit), code="body_too_large")
        received, started = 0, False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # an HTTPException passes FastAPI's body parsing to the error handler
                    raise HTTPException(413, self._message(limit))
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except HTTPException as err:  # raised outside the app's handlers
            if not started:
                await send_json_error(send, err.status_code, err.detail, code="body_too_large")
