"""A local HTTP file server standing in for the model hubs in the download tests, and the pytest
fixtures around it (`server`, `closed_port`; registered for every test file by conftest.py)."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), FileHandler)
        self.files: dict[str, bytes] = {}
        self.wrong_bodies: dict[str, bytes] = {}  # name -> what is sent instead of the real file
        self.statuses: dict[str, int] = {}  # name -> forced error status
        self.cuts: dict[str, int] = {}  # name -> how many more transfers to cut halfway
        self.etags: set[str] = set()  # names whose ETag declares the real file's sha256
        self.honour_range = True
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FileHandler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        name = self.path.rsplit("/", 1)[-1]
        if self.path.startswith("/redirect/"):
            return self._redirect(name)
        if name in srv.statuses:
            return self._empty(srv.statuses[name])
        if name not in srv.files:
            return self._empty(404)
        self._send_file(name)

    def _redirect(self, name):
        self.send_response(302)
        self.send_header("Location", f"/files/{name}")
        self.send_header("X-Linked-ETag", f'"{sha256(self.server.files[name])}"')
        self.send_header("X-Linked-Size", str(len(self.server.files[name])))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _empty(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send_file(self, name):
        srv = self.server
        body = srv.wrong_bodies.get(name, srv.files[name])
        start = self._range_start()
        if start is not None and start >= len(body):
            return self._empty(416)
        self.send_response(206 if start is not None else 200)
        start = start or 0
        if self.headers.get("Range") and srv.honour_range:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        if name in srv.etags:
            self.send_header("ETag", f'"{sha256(srv.files[name])}"')
        self.end_headers()
        payload = body[start:]
        if srv.cuts.get(name, 0) > 0:
            srv.cuts[name] -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(payload)

    def _range_start(self):
        match = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        return int(match.group(1)) if match and self.server.honour_range else None


@pytest.fixture
def server():
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now: connections are refused
    return port


def hf_cache_file(repo_cache: Path, revision: str, name: str, data: bytes = b"weights") -> Path:
    """Lay out a file the way huggingface_hub does: the snapshot entry links to a blob."""
    blob = repo_cache / "blobs" / sha256(data + name.encode())
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo_cache / "snapshots" / revision / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    return link
