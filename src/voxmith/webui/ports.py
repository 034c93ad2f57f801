"""Is the web UI's port free? Checked before anything heavy loads, so a taken port (another studio,
another Gradio app) is a message with a free port to use instead, not a traceback."""

from __future__ import annotations

import errno
import socket
from typing import Optional

from voxmith.errors import VoxmithError

SEARCH_SPAN = 20  # ports after the wanted one to look at for a suggestion


def port_is_free(host: str, port: int) -> bool:
    """True if a server could listen on host:port now (the port is released again at once)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As servers do: a port left in TIME_WAIT by a stopped studio counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return False
            if err.errno == errno.EACCES:
                raise VoxmithError(f"Port {port} needs administrator rights; choose one above 1023 with "
                                   "--listen HOST:PORT.") from None
            raise VoxmithError(f"Cannot listen on {host}:{port}: {err.strerror}. Check the --listen address.") \
                from None
    return True


def free_port_after(host: str, port: int) -> Optional[int]:
    return next((p for p in range(port + 1, min(port + 1 + SEARCH_SPAN, 65536)) if port_is_free(host, p)), None)


def ensure_port_free(host: str, port: int) -> None:
    """Raise with a suggested `--listen` if host:port is taken."""
    if port_is_free(host, port):
        return
    shown = f"[{host}]" if ":" in host else host
    other = free_port_after(host, port)
    suggestion = f" Use another port, e.g. `voxmith webui --listen {shown}:{other}`" if other else \
        " Choose another port with --listen HOST:PORT"
    raise VoxmithError(f"Port {port} on {shown} is already in use (another voxmith web UI, or another "
                       f"program, is listening there).{suggestion}, or stop the program that holds it.")
