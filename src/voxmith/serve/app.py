"""Assembling the API around one Studio: routes, error shape, worker pool and guards."""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Optional, Tuple

from fastapi import FastAPI

from voxmith import __version__
from voxmith.http_access import HostOriginGuard
from voxmith.serve import book_api, openai_api, studio_api
from voxmith.serve.book_jobs import BookJobs
from voxmith.serve.book_records import BookJobStore
from voxmith.serve.errors import install_error_handlers
from voxmith.serve.guards import BodyLimit, TokenGuard, send_json_error
from voxmith.serve.pool import SynthesisPool, default_workers
from voxmith.serve.uploads import ConvertUploads

WEBUI_PATH = "/ui"


@dataclass
class ServeConfig:
    bind_host: str = "127.0.0.1"  # for the Host-header policy (voxmith.http_access)
    token: Optional[str] = None  # required as 'Authorization: Bearer TOKEN' when set
    workers: int = field(default_factory=default_workers)
    # Requests that may wait for a worker; more get 503 + Retry-After at once.
    max_waiting: Optional[int] = None  # default: 16 per worker
    max_body_bytes: int = 1 << 20  # JSON requests (4096 characters of text need far less)
    max_upload_bytes: int = 200 << 20  # a voice's clips, or a recording to convert, in one upload
    max_book_bytes: int = 50 << 20  # a book (text, Markdown, EPUB) uploaded or named in the workspace
    max_waiting_books: int = 8  # books waiting for the book worker; more get 503
    allowed_hosts: Tuple[str, ...] = ()
    drain_timeout_s: float = 300.0  # SIGTERM: how long in-flight requests may take to finish

    @property
    def waiting(self) -> int:
        return 16 * self.workers if self.max_waiting is None else self.max_waiting


def build_app(studio, config: Optional[ServeConfig] = None, webui=None) -> FastAPI:
    """The ASGI app. `webui`: a Gradio Blocks to mount at /ui (it checks the token itself)."""
    config = config or ServeConfig()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pool = SynthesisPool(config.workers, config.waiting)
        # the jobs of servers that ran on this workspace before are listed again; none is started
        app.state.books = BookJobs(lambda job: book_api.make_book(studio, job), config.max_waiting_books,
                                   store=BookJobStore(studio.workspace.book_jobs_dir,
                                                      books_root=studio.workspace.results_dir))
        try:
            yield
        finally:  # uvicorn has let in-flight requests finish (SIGTERM drains); now the workers
            app.state.books.shutdown()  # books stop at their next sentence; their folders resume them
            app.state.pool.shutdown(wait=True, timeout_s=config.drain_timeout_s)

    app = FastAPI(title="voxmith", version=__version__, lifespan=lifespan,
                  description="A local voice-cloning studio's HTTP API. `/v1` speaks OpenAI's audio "
                              "speech protocol; `/voxmith` has the studio's own options.")
    app.state.studio, app.state.config = studio, config
    app.state.uploads = ConvertUploads(studio.workspace.uploads_dir)  # recordings sent to /voxmith/convert
    install_error_handlers(app)
    app.include_router(openai_api.router)
    app.include_router(studio_api.router)
    app.include_router(book_api.router)

    @app.get("/health", tags=["voxmith"], summary="Liveness and load")
    async def health():
        pool = app.state.pool
        return {"status": "ok", "version": __version__, "workers": pool.workers, "active": pool.active,
                "max_waiting": pool.max_waiting}

    if webui is not None:
        import gradio as gr

        def password_is_token(_user: str, password: str) -> bool:
            return secrets.compare_digest(password.encode(), config.token.encode())

        app = gr.mount_gradio_app(  # the page asks for the token as its password
            app, webui, path=WEBUI_PATH, auth=password_is_token if config.token else None,
            auth_message="This voxmith studio is protected: enter any user name and the token as password."
            if config.token else None, allowed_paths=[str(studio.workspace.home)])
    # Outermost first: Host/Origin, then the token, then body size.
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes, upload_max_bytes=config.max_upload_bytes,
                       upload_prefixes=("/voxmith/voices", "/voxmith/convert", "/voxmith/books", WEBUI_PATH))
    if config.token:
        app.add_middleware(TokenGuard, token=config.token,
                           open_prefixes=("/docs", "/openapi.json", "/redoc", WEBUI_PATH))
    app.add_middleware(HostOriginGuard, bind_host=config.bind_host, allowed_hosts=config.allowed_hosts,
                       refuse=_refuse_in_json)
    return app


async def _refuse_in_json(send, status: int, message: str) -> None:
    """A request refused by the Host/Origin guard, answered in the API's error shape like any other."""
    await send_json_error(send, status, message, code="forbidden_host_or_origin")
