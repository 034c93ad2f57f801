"""Which HTTP requests a local studio server answers: a defence against DNS rebinding and
cross-site requests, shared by the web UI and any other HTTP shell.

The rules, for a server bound to `bind_host`:
- Host header. A web page can point its own domain at 127.0.0.1 (DNS rebinding); the browser then
  sends `Host: evil.example` to our loopback port and treats our answers as the page's own. So a
  server bound to loopback answers only loopback names (localhost, 127.0.0.1, [::1], any port) and
  the names configured with `allowed_hosts`. A server bound elsewhere also answers IP literals
  (a rebinding attack always arrives under a domain name) and its own bind name.
- Origin header, on requests that change state (anything but GET, HEAD, OPTIONS, and websockets,
  which browsers open cross-site freely): a browser sends the page's origin; it must be the
  server's own (same host and port as the Host header) or one of `allowed_hosts`. `null`
  (sandboxed frames, file: pages) is refused. Requests without Origin come from programs, not
  pages, and pass.

Pure functions plus a small ASGI middleware (`HostOriginGuard`) that any ASGI app (Gradio,
FastAPI, Starlette) can wrap itself in, and `parse_listen` for the shells' --listen options.
Nothing here knows about voxmith's studio.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Optional, Tuple
from urllib.parse import urlsplit

from voxmith.errors import VoxmithError

LOOPBACK_NAMES = ("localhost",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = AccessDecision(True)


def _ip(name: str) -> Optional[ipaddress._BaseAddress]:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def is_loopback_name(name: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1 (brackets allowed)."""
    name = name.lower().rstrip(".")
    if name in LOOPBACK_NAMES:
        return True
    address = _ip(name)
    return bool(address and address.is_loopback)


def split_host(value: str) -> Tuple[str, Optional[int]]:
    """'Host' header value -> (lower-case name without brackets, port or None).
    'localhost:7860' -> ('localhost', 7860); '[::1]:80' -> ('::1', 80); 'a.b' -> ('a.b', None)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:  # a bare name, or a bare IPv6 literal
        name, port = value, ""
    if port and not port.isdigit():
        raise ValueError(f"bad port in {value!r}")
    return name.rstrip("."), int(port) if port else None


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        return is_loopback_name(self.host)  # another host name may resolve to anything


def parse_listen(value: Optional[str], default_port: int, default_host: str = "127.0.0.1") -> ListenAddress:
    """A --listen value: 'HOST:PORT', 'HOST', ':PORT', '[::1]:PORT', a bare IPv6 address, or None."""
    if not value:
        return ListenAddress(default_host, default_port)
    host, port = value, str(default_port)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest.lstrip(":") or port
    elif value.count(":") == 1:
        host, port = value.split(":")
    host = host or default_host
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise VoxmithError(f"--listen '{value}': the port must be a number from 1 to 65535.")
    return ListenAddress(host, int(port))


def _normalise_names(names: Iterable[str]) -> frozenset:
    return frozenset(split_host(n)[0] for n in names if n and n.strip())


def check_host(host_header: Optional[str], bind_host: str, allowed_hosts: Iterable[str] = ()) -> AccessDecision:
    """May a request with this Host header be answered by a server bound to `bind_host`?"""
    if not host_header:
        return AccessDecision(False, "the request has no Host header")
    try:
        name, _ = split_host(host_header)
    except ValueError:
        return AccessDecision(False, f"the Host header {host_header!r} is malformed")
    if is_loopback_name(name) or name in _normalise_names(allowed_hosts):
        return ALLOW
    bound_to_loopback = is_loopback_name(bind_host)
    if not bound_to_loopback and (_ip(name) is not None or name == split_host(bind_host)[0]):
        return ALLOW
    where = "loopback" if bound_to_loopback else bind_host
    return AccessDecision(False, f"host name {name!r} is not allowed for a server on {where} "
                                 "(possible DNS rebinding); add it with --allowed-host if it is yours")


def check_origin(origin: Optional[str], host_header: Optional[str], allowed_hosts: Iterable[str] = ()) -> AccessDecision:
    """May a page from `origin` make a state-changing request to the server at `host_header`?"""
    if origin is None:
        return ALLOW  # not sent by a browser page
    if origin.strip().lower() == "null":
        return AccessDecision(False, "requests from an opaque ('null') origin are refused")
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.hostname:
        return AccessDecision(False, f"the Origin header {origin!r} is malformed")
    try:
        origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
        host_name, host_port = split_host(host_header or "")
    except ValueError:
        return AccessDecision(False, f"the Origin header {origin!r} is malformed")
    origin_name = parts.hostname.rstrip(".")
    same_origin = origin_name == host_name and origin_port == (host_port or {"http": 80, "https": 443}.get(parts.scheme))
    if same_origin or origin_name in _normalise_names(allowed_hosts):
        return ALLOW
    return AccessDecision(False, f"cross-site request from {origin} refused")


def check_request(method: str, host_header: Optional[str], origin: Optional[str], bind_host: str,
                  allowed_hosts: Iterable[str] = ()) -> AccessDecision:
    """Both checks for one request; `method` is the HTTP method or 'WEBSOCKET'."""
    allowed_hosts = tuple(allowed_hosts)
    decision = check_host(host_header, bind_host, allowed_hosts)
    if decision and method.upper() not in SAFE_METHODS:
        decision = check_origin(origin, host_header, allowed_hosts)
    return decision


class HostOriginGuard:
    """ASGI middleware applying `check_request` to every HTTP and websocket request.
    Refused HTTP requests get 403 with the reason: as plain text, or through `refuse(send, status,
    message)` (an API answers in its own error shape); refused websockets are closed."""

    def __init__(self, app, bind_host: str, allowed_hosts: Iterable[str] = (),
                 refuse: Optional[Callable[[Any, int, str], Awaitable[None]]] = None):
        self.app, self.bind_host, self.allowed_hosts = app, bind_host, tuple(allowed_hosts)
        self.refuse = refuse

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        method = scope.get("method", "GET") if scope["type"] == "http" else "WEBSOCKET"
        decision = check_request(method, headers.get("host"), headers.get("origin"), self.bind_host,
                                 self.allowed_hosts)
        if decision:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        if self.refuse is not None:
            return await self.refuse(send, 403, f"Forbidden: {decision.reason}.")
        await send_plain(send, 403, f"Forbidden: {decision.reason}.\n")


async def send_plain(send, status: int, text: str, headers: Tuple[Tuple[bytes, bytes], ...] = ()) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})
