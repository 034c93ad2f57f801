"""Starting the web UI safely: loopback by default; any other address needs a token."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from typing import Optional

from voxmith.errors import VoxmithError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
TOKEN_USER = "voxmith"


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything


def parse_listen(value: Optional[str]) -> ListenAddress:
    """'HOST:PORT', 'HOST', ':PORT' or None (127.0.0.1:7860). IPv6 as '[::1]:7860'."""
    if not value:
        return ListenAddress(DEFAULT_HOST, DEFAULT_PORT)
    host, port = value, str(DEFAULT_PORT)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":") or port
    elif value.count(":") == 1:
        host, port = value.split(":")
    host = host or DEFAULT_HOST
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise VoxmithError(f"--listen '{value}': the port must be a number from 1 to 65535.")
    return ListenAddress(host, int(port))


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


def launch(studio, listen: Optional[str] = None, token: Optional[str] = None, block: bool = True):
    """Build and start the app; returns (app, url). With block=False it runs in a thread."""
    address = parse_listen(listen)
    token = check_access(address, token)
    # Nothing in the studio should phone home.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from voxmith.webui.app import build_app

    app = build_app(studio)
    app.queue(default_concurrency_limit=1)  # long jobs run one at a time in the background
    _, url, _ = app.launch(
        server_name=address.host.strip("[]"), server_port=address.port, prevent_thread_lock=not block,
        auth=token_checker(token) if token else None,
        auth_message="This voxmith studio is protected: enter any user name and the share token as password."
        if token else None,
        show_error=True, quiet=not block, ssr_mode=False, inbrowser=False,
        allowed_paths=[str(studio.workspace.home)], footer_links=[],
    )
    return app, url
