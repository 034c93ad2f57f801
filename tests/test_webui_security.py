"""The web UI's network defences against a real server, with raw HTTP requests that forge the
Host and Origin headers a DNS-rebinding page or a cross-site form would send."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import uuid
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(studio, listen_host="127.0.0.1", **options):
    from voxmith.webui.server import launch

    port = free_port()
    app, _ = launch(studio, f"{listen_host}:{port}", block=False, **options)
    try:
        yield port
    finally:
        app.close()


def request(port, method, path, headers=None, body=None):
    """One raw request; `headers` must include Host (http.client's own is suppressed)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for key, value in (headers or {}).items():
        connection.putheader(key, value)
    if body is not None:
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, response.headers, data


def multipart(name: str, payload: bytes):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def session_cookie(port) -> str:
    status, headers, _ = request(port, "GET", "/", {"Host": f"127.0.0.1:{port}"})
    assert status == 200
    return headers["set-cookie"].split(";")[0]


@pytest.fixture(scope="module")
def studio(tmp_path_factory, demo_files):
    from voxmith.studio import Studio

    studio = Studio(tmp_path_factory.mktemp("webui-sec") / "ws", device="cpu")
    studio.voices.add("alice", demo_files[:1])
    return studio


@pytest.fixture(scope="module")
def loopback(studio):
    with running(studio) as port:
        yield port


def test_rebinding_host_names_are_refused_on_loopback(loopback, studio):
    clip = studio.voices.get("alice").clip_paths[0]
    for host in (f"localhost:{loopback}", f"127.0.0.1:{loopback}", "localhost"):
        assert request(loopback, "GET", "/", {"Host": host})[0] == 200, host
    status, _, body = request(loopback, "GET", "/", {"Host": f"evil.example:{loopback}"})
    assert status == 403 and b"DNS rebinding" in body
    # The attack the issue describes: reading a clip through the rebound name.
    assert request(loopback, "GET", f"/gradio_api/file={clip}", {"Host": f"localhost:{loopback}"})[0] == 200
    status, _, body = request(loopback, "GET", f"/gradio_api/file={clip}", {"Host": "evil.example"})
    assert status == 403 and len(body) < 500
    assert request(loopback, "GET", "/config", {"Host": "127.0.0.1.nip.io"})[0] == 403


def test_state_changing_requests_need_our_origin(loopback):
    host = {"Host": f"127.0.0.1:{loopback}", "Content-Type": "application/json"}
    join = json.dumps({"data": [], "fn_index": 0, "session_hash": "x"}).encode()
    status, _, body = request(loopback, "POST", "/gradio_api/queue/join", {**host, "Origin": "http://evil.example"},
                              join)
    assert status == 403 and b"cross-site" in body
    status, _, _ = request(loopback, "POST", "/gradio_api/queue/join", {**host, "Origin": "null"}, join)
    assert status == 403
    # The page's own origin gets through the guard (Gradio then answers for itself).
    status, _, _ = request(loopback, "POST", "/gradio_api/queue/join",
                           {**host, "Origin": f"http://127.0.0.1:{loopback}"}, join)
    assert status != 403


def test_upload_needs_the_session_and_a_size_within_the_limit(studio):
    with running(studio, max_upload_mb=1) as port:
        host = {"Host": f"127.0.0.1:{port}", "Origin": f"http://127.0.0.1:{port}"}
        body, content_type = multipart("clip.wav", b"RIFF" + b"\0" * 1000)
        status, _, text = request(port, "POST", "/gradio_api/upload", {**host, "Content-Type": content_type}, body)
        assert status == 403 and b"no studio session" in text
        cookie = session_cookie(port)
        headers = {**host, "Content-Type": content_type, "Cookie": cookie}
        big, big_type = multipart("big.wav", b"\0" * (2 * 2 ** 20))
        status, _, text = request(port, "POST", "/gradio_api/upload", {**headers, "Content-Type": big_type}, big)
        assert status == 413 and b"--max-upload-mb" in text
        status, _, text = request(port, "POST", "/gradio_api/upload", headers, body)
        assert status == 200, text
        uploaded = Path(json.loads(text)[0])
        assert uploaded.exists() and uploaded.name == "clip.wav"
        # A private folder, not the machine-wide /tmp/gradio.
        assert "voxmith-webui-" in str(uploaded) and (uploaded.parents[1].stat().st_mode & 0o077) == 0
    assert not uploaded.exists()  # the server's temporary files go when it stops


def test_network_server_answers_ip_and_configured_names_and_wants_login(studio):
    with running(studio, "0.0.0.0", token="correct-horse-battery", allowed_hosts=("studio.lan",)) as port:
        assert request(port, "GET", "/", {"Host": f"192.168.1.20:{port}"})[0] == 200  # the login page
        assert request(port, "GET", "/", {"Host": f"studio.lan:{port}"})[0] == 200
        assert request(port, "GET", "/", {"Host": "evil.example"})[0] == 403
        cookie = session_cookie(port)
        body, content_type = multipart("clip.wav", b"RIFF" + b"\0" * 100)
        status, _, _ = request(port, "POST", "/gradio_api/upload",
                               {"Host": f"127.0.0.1:{port}", "Content-Type": content_type, "Cookie": cookie}, body)
        assert status == 401  # Gradio's login is still required on top of the session


def test_webui_command_offers_the_options():
    from click.testing import CliRunner

    from voxmith.cli.main import cli

    result = CliRunner().invoke(cli, ["webui", "--help"])
    assert "--allowed-host" in result.output and "--max-upload-mb" in result.output
