"""Starting the API with uvicorn: loopback by default, a token for anything else, and a graceful
stop (SIGTERM or Ctrl-C: no new connections, in-flight requests finish, then the workers stop)."""

from __future__ import annotations

import errno
import os
import socket
from typing import Iterable, Optional

from voxmith.errors import VoxmithError
from voxmith.http_access import ListenAddress
from voxmith.http_access import parse_listen as parse_host_port
from voxmith.serve.app import WEBUI_PATH, ServeConfig, build_app

DEFAULT_PORT = 8000
TOKEN_ENV = "VOXMITH_SERVE_TOKEN"
MIN_TOKEN_CHARS = 8


def parse_listen(value: Optional[str]) -> ListenAddress:
    """'HOST:PORT', 'HOST', ':PORT', '[::1]:PORT', a bare IPv6 address or None (127.0.0.1:8000)."""
    if value and ":" in value and not value.startswith("[") and value.count(":") > 1:
        value = f"[{value}]"  # a bare IPv6 address
    return parse_host_port(value, DEFAULT_PORT)


def check_token(address: ListenAddress, token: Optional[str]) -> Optional[str]:
    """The token to require; refuses to open the studio to the network without one."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if not address.is_loopback and not token:
        raise VoxmithError(
            f"Refusing to listen on {address.host}: anyone on the network could use the studio and read its "
            f"results. Pass --token SECRET (or set {TOKEN_ENV}); clients then send 'Authorization: Bearer "
            "SECRET' (the OpenAI client's api_key).")
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise VoxmithError(f"The token is too short; use at least {MIN_TOKEN_CHARS} characters.")
    return token


def check_port_free(address: ListenAddress) -> None:
    host = address.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, address.port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                advice = ("Another program (or another voxmith serve) may hold the port; choose another with "
                          "--listen HOST:PORT." if err.errno == errno.EADDRINUSE else
                          "Ports below 1024 need administrator rights; choose a port from 1024 up.")
            else:  # an unknown name, or an address of another machine: the port has nothing to do with it
                advice = ("Check the address: it must be one of this machine's (127.0.0.1 for this machine "
                          "only, 0.0.0.0 for every network interface).")
            raise VoxmithError(f"Cannot listen on {host} port {address.port}: {err.strerror or err}. "
                               f"{advice}") from None


def make_server(studio, listen: Optional[str] = None, token: Optional[str] = None, workers: Optional[int] = None,
                webui=None, allowed_hosts: Iterable[str] = (), log_level: str = "info",
                config: Optional[ServeConfig] = None):
    """A configured `uvicorn.Server` (call `.run()`), and its address. `webui`: Gradio Blocks to
    serve at /ui (the CLI builds them: this shell does not import the web UI's)."""
    import uvicorn

    address = parse_listen(listen)
    token = check_token(address, token)
    config = config or ServeConfig()
    config.bind_host, config.token, config.allowed_hosts = address.host, token, tuple(allowed_hosts)
    if workers is not None:
        if workers < 1:
            raise VoxmithError("--workers must be at least 1.")
        config.workers = workers
    app = build_app(studio, config, webui=webui)
    uv_config = uvicorn.Config(
        app, host=address.host.strip("[]"), port=address.port, log_level=log_level,
        timeout_graceful_shutdown=int(config.drain_timeout_s),
        # Connections beyond what the pool can queue are refused by uvicorn itself (503).
        limit_concurrency=config.workers + config.waiting + 64,
    )
    return uvicorn.Server(uv_config), address


def describe(address: ListenAddress, webui: bool) -> str:
    host = f"[{address.host.strip('[]')}]" if ":" in address.host else address.host
    base = f"http://{host}:{address.port}"
    lines = [f"voxmith API on {base} (OpenAI-compatible: {base}/v1, docs: {base}/docs)"]
    if webui:
        lines.append(f"web UI on {base}{WEBUI_PATH}")
    return "\n".join(lines)
