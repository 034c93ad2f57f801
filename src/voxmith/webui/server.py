"""Starting the web UI safely: loopback by default; any other address needs a token.

Every request passes `voxmith.http_access` (Host names against DNS rebinding, Origin on
state-changing requests). Uploads need the page's session cookie, are limited in size, and land
in a private temporary folder whose files are deleted after an hour and when the server stops.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
import time
from typing import Iterable, Optional
from urllib.parse import urlencode

from voxmith.errors import VoxmithError
from voxmith.http_access import HostOriginGuard, ListenAddress, send_plain
from voxmith.http_access import parse_listen as parse_host_port
from voxmith.webui.forms import UPLOADS_KEPT_S

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
TOKEN_USER = "voxmith"
DEFAULT_MAX_UPLOAD_MB = 1024  # an hour of 44.1 kHz stereo WAV is ~640 MB
SESSION_COOKIE = "voxmith-session"
MAX_LOGIN_BYTES = 64 * 1024
UPLOAD_PATH_SUFFIX = "/gradio_api/upload"
# Uploads are copied into the workspace at once; the temporary copies are swept this often/this old.
TEMP_SWEEP_EVERY_S, TEMP_MAX_AGE_S = 600, UPLOADS_KEPT_S


def parse_listen(value: Optional[str]) -> ListenAddress:
    """'HOST:PORT', 'HOST', ':PORT' or None (127.0.0.1:7860). IPv6 as '[::1]:7860'."""
    return parse_host_port(value, DEFAULT_PORT, DEFAULT_HOST)


def check_access(address: ListenAddress, token: Optional[str]) -> Optional[str]:
    """The token to require, or an error when the studio would be open to the network."""
    token = token or os.environ.get("VOXMITH_WEBUI_TOKEN") or None
    if not address.is_loopback and not token:
        raise VoxmithError(
            f"Refusing to listen on {address.host}: anyone on the network could use and read the studio. "
            "Pass --share-token TOKEN (or set VOXMITH_WEBUI_TOKEN); the page then asks for it as the password."
        )
    if token is not None and len(token) < 8:
        raise VoxmithError("The share token is too short; use at least 8 characters.")
    return token


def token_checker(token: str):
    """Gradio auth callback: any user name, password must equal the token (constant-time)."""
    def check(_user: str, password: str) -> bool:
        return secrets.compare_digest(password.encode(), token.encode())
    return check


class UploadGuard:
    """ASGI middleware: hands every page a random session cookie (SameSite=Strict, so other sites'
    pages never send it) and refuses uploads without it or larger than `max_bytes`."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes
        self.session = secrets.token_urlsafe(32)

    def _has_session(self, headers) -> bool:
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and secrets.compare_digest(value.encode(), self.session.encode()):
                return True
        return False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        has_session = self._has_session(headers)
        if scope["method"] == "POST" and scope["path"].rstrip("/").endswith(UPLOAD_PATH_SUFFIX):
            if not has_session:
                return await send_plain(send, 403, "Upload refused: no studio session. Open the studio page "
                                                   "in the browser and upload from there.\n")
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_bytes:
                return await send_plain(send, 413, f"Upload refused: larger than the limit of "
                                                   f"{self.max_bytes // 2 ** 20} MB (voxmith webui --max-upload-mb).\n")
        if has_session:
            return await self.app(scope, receive, send)
        cookie = f"{SESSION_COOKIE}={self.session}; Path=/; HttpOnly; SameSite=Strict".encode()

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)
        await self.app(scope, receive, send_with_cookie)


class AnyUserName:
    """ASGI middleware for the token login: the user name does not matter, so a login without one
    logs in as `TOKEN_USER`. (Gradio's form clears the field after a wrong token; its login then
    refused an empty name with a 422 the page ignored: the button seemed dead.)"""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != "/login":
            return await self.app(scope, receive, send)
        from starlette.requests import Request

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        length = headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_LOGIN_BYTES:
            return await send_plain(send, 413, "Login refused: the form is missing or too large.\n")
        form = await Request(scope, receive).form()  # the page sends multipart, programs often urlencoded
        fields = {"username": str(form.get("username") or "").strip() or TOKEN_USER,
                  "password": str(form.get("password") or "")}
        body = urlencode(fields).encode()
        kept = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
        scope = {**scope, "headers": kept + [(b"content-type", b"application/x-www-form-urlencoded"),
                                             (b"content-length", str(len(body)).encode())]}
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, replay, send)


_private_temp_dir: Optional[str] = None


def private_upload_folder() -> str:
    """A temporary folder only this user can read, for Gradio's uploads and file cache (the
    default /tmp/gradio is shared by every user of the machine). One per process, removed at exit."""
    global _private_temp_dir
    if _private_temp_dir is None:
        _private_temp_dir = tempfile.mkdtemp(prefix="voxmith-webui-")  # mode 0700
        atexit.register(shutil.rmtree, _private_temp_dir, True)
    return _private_temp_dir


def launch(studio, listen: Optional[str] = None, token: Optional[str] = None, block: bool = True,
           allowed_hosts: Iterable[str] = (), max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB):
    """Build and start the app; returns (app, url). With block=False it runs in a thread.
    `allowed_hosts`: extra host names the page may be reached by (a reverse proxy, a LAN name)."""
    address = parse_listen(listen)
    token = check_access(address, token)
    if max_upload_mb < 1:
        raise VoxmithError("--max-upload-mb must be at least 1.")
    # Nothing in the studio should phone home.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Read by Gradio when the app and its components are built, and again when it checks paths.
    os.environ["GRADIO_TEMP_DIR"] = private_upload_folder()
    from starlette.middleware import Middleware

    from voxmith.webui.app import build_app

    app = build_app(studio, delete_cache=(TEMP_SWEEP_EVERY_S, TEMP_MAX_AGE_S))
    # One event at a time. Not for the engines' sake (a request's fine-tune is its own engine
    # object, and speaking from several threads gives each exactly what it gets alone: see
    # voxmith.engines.base), but because the other tabs change voices, datasets and runs in place,
    # and a long job (enrolling, preparing a dataset) should not race an edit of the same voice.
    app.queue(default_concurrency_limit=1)
    middleware = [Middleware(HostOriginGuard, bind_host=address.host, allowed_hosts=tuple(allowed_hosts)),
                  Middleware(UploadGuard, max_bytes=max_upload_mb * 2 ** 20), Middleware(AnyUserName)]
    # Gradio checks that the page answers with 3-second requests and, on a busy machine, fails with
    # advice about share links; give a slow first page the time it needs.
    from gradio import networking

    quick_check, networking.url_ok = networking.url_ok, _patient_url_ok
    try:
        _, url, _ = app.launch(
            server_name=address.host.strip("[]"), server_port=address.port, prevent_thread_lock=not block,
            auth=token_checker(token) if token else None,
            auth_message="This voxmith studio is protected: enter any user name and the share token as password."
            if token else None,
            show_error=True, quiet=not block, ssr_mode=False, inbrowser=False,
            allowed_paths=[str(studio.workspace.home)], footer_links=[],
            max_file_size=max_upload_mb * 2 ** 20, app_kwargs={"middleware": middleware},
        )
    finally:
        networking.url_ok = quick_check
    return app, url


def _patient_url_ok(url: str, within_s: float = 60.0) -> bool:
    """Whether the started server answers at `url` within `within_s` seconds."""
    import httpx

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if httpx.head(url, timeout=max(1.0, deadline - time.monotonic())).status_code < 500:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False
