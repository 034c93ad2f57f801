"""Starting the API with uvicorn: loopback by default, a token for anything else, and a graceful
stop (SIGTERM or Ctrl-C: no new connections, in-flight requests finish, then the workers stop)."""

from __future__ import annotations

import os
from typing import Iterable, Optional

from voxmith.errors import VoxmithError
from voxmith.serve.app import WEBUI_PATH, ServeConfig, build_app
from voxmith.webui.server import ListenAddress
from voxmith.webui.server import parse_listen as parse_host_port

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
TOKEN_ENV = "VOXMITH_SERVE_TOKEN"
MIN_TOKEN_CHARS = 8


def parse_listen(value: Optional[str]) -> ListenAddress:
    """'HOST:PORT', 'HOST', ':PORT', '[::1]:PORT' or None (127.0.0.1:8000)."""
    if not value:
        return ListenAddress(DEFAULT_HOST, DEFAULT_PORT)
    if value.startswith("["):
        if "]:" not in value:
            value += f":{DEFAULT_PORT}"
    elif value.count(":") == 0:
        value += f":{DEFAULT_PORT}"
    elif value.count(":") > 1:  # a bare IPv6 address
        value = f"[{value}]:{DEFAULT_PORT}"
    return parse_host_port(value)


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
    from voxmith.webui.ports import free_port_after, port_is_free

    host = address.host.strip("[]")
    if port_is_free(host, address.port):
        return
    other = free_port_after(host, address.port)
    shown = f"[{host}]" if ":" in host else host
    hint = f" Use another port, e.g. `voxmith serve --listen {shown}:{other}`," if other else \
        " Choose another port with --listen HOST:PORT,"
    raise VoxmithError(f"Port {address.port} on {shown} is already in use.{hint} or stop the program that holds it.")


def make_server(studio, listen: Optional[str] = None, token: Optional[str] = None, workers: Optional[int] = None,
                webui: bool = False, allowed_hosts: Iterable[str] = (), log_level: str = "info",
                config: Optional[ServeConfig] = None):
    """A configured `uvicorn.Server` (call `.run()`), and its address."""
    import uvicorn

    address = parse_listen(listen)
    token = check_token(address, token)
    config = config or ServeConfig()
    config.bind_host, config.token, config.allowed_hosts = address.host, token, tuple(allowed_hosts)
    if workers is not None:
        if workers < 1:
            raise VoxmithError("--workers must be at least 1.")
        config.workers = workers
    blocks = None
    if webui:
        blocks = _webui_blocks(studio)
    app = build_app(studio, config, webui=blocks)
    uv_config = uvicorn.Config(
        app, host=address.host.strip("[]"), port=address.port, log_level=log_level,
        timeout_graceful_shutdown=int(config.drain_timeout_s),
        # Connections beyond what the pool can queue are refused by uvicorn itself (503).
        limit_concurrency=config.workers + config.waiting + 64,
    )
    return uvicorn.Server(uv_config), address


def _webui_blocks(studio):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from voxmith.webui.app import build_app as build_webui
    from voxmith.webui.server import private_upload_folder

    os.environ["GRADIO_TEMP_DIR"] = private_upload_folder()
    blocks = build_webui(studio)
    blocks.queue(default_concurrency_limit=1)  # the web UI's long jobs run one at a time, as in `voxmith webui`
    return blocks


def describe(address: ListenAddress, webui: bool) -> str:
    host = f"[{address.host.strip('[]')}]" if ":" in address.host else address.host
    base = f"http://{host}:{address.port}"
    lines = [f"voxmith API on {base} (OpenAI-compatible: {base}/v1, docs: {base}/docs)"]
    if webui:
        lines.append(f"web UI on {base}{WEBUI_PATH}")
    return "\n".join(lines)
