"""`voxmith serve`: the HTTP API (OpenAI-compatible speech, and the studio's own endpoints)."""

from __future__ import annotations

import atexit
import signal
import threading
from typing import NoReturn

import click

from voxmith.process_exit import exit_now


@click.command()
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Address to serve on (default 127.0.0.1:8000). Other than loopback needs --token.")
@click.option("--token", envvar="VOXMITH_SERVE_TOKEN", default=None,
              help="Require 'Authorization: Bearer TOKEN' (the OpenAI client's api_key); needed beyond loopback.")
@click.option("--workers", type=int, default=None,
              help="Synthesis workers (default: from the cores and memory). Requests beyond them queue; "
                   "a full queue answers 503 with Retry-After.")
@click.option("--webui", is_flag=True, help="Serve the web UI too, at /ui on the same port.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another host name clients may use (a LAN name, a reverse proxy); repeatable. "
                   "Other names are refused (DNS rebinding).")
@click.pass_obj
def serve(obj, listen, token, workers, webui, allowed_hosts):
    """Serve the studio over HTTP: OpenAI's /v1/audio/speech and voxmith's own /voxmith API."""
    from voxmith.serve.server import check_port_free, check_token, describe, make_server, parse_listen

    address = parse_listen(listen)
    check_token(address, token)  # refuse before loading anything heavy
    check_port_free(address)
    blocks = webui_blocks(obj.studio) if webui else None
    server, address = make_server(obj.studio, listen, token, workers, blocks, allowed_hosts,
                                  log_level="warning" if obj.quiet else "info")
    click.echo(describe(address, webui), err=True)
    click.echo("SIGTERM or Ctrl-C stops it after the requests in progress.", err=True)
    # uvicorn takes SIGTERM over while it serves, then puts back the handler it found and raises the
    # signal again into it: with Python's default one the process was killed outright (no exit
    # handlers: the web UI's upload folder of users' recordings stayed behind after `docker stop`).
    signal.signal(signal.SIGTERM, _raise_terminated)
    # The same for SIGINT: a server started in the background by a shell (`voxmith serve &`, a
    # script, CI) inherits SIGINT ignored, so after uvicorn's shutdown the re-raised signal did
    # nothing and a `kill -INT` ended it with status 0, its requests' models torn down.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        server.run()
    except Terminated:
        click.echo("\nStopped (SIGTERM).", err=True)
        leave_without_teardown(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C only once it has shut down: every request finished and the app's
        # lifespan stopped the synthesis and book workers (serve/app.py). The interpreter's own
        # shutdown would then tear down every model a request loaded (torch, onnxruntime, Whisper),
        # most of a second of CPU after the first synthesis and many seconds on a busy machine, for
        # nothing: leave now, as an interpreter's exit does up to that teardown.
        click.echo("\nInterrupted.", err=True)
        leave_without_teardown(130)


class Terminated(Exception):
    """SIGTERM, once uvicorn has shut down (the counterpart of Ctrl-C's KeyboardInterrupt)."""


def _raise_terminated(signum, frame) -> NoReturn:
    raise Terminated()


def leave_without_teardown(status: int) -> NoReturn:
    """End the process as Python's exit does, without its last step (freeing every module and
    object): non-daemon threads are waited for, exit handlers run (logging's flush, the web UI's
    upload folder removal), the standard streams are flushed."""
    shutdown_threads = getattr(threading, "_shutdown", None)  # what Python's exit calls first
    if shutdown_threads is not None:
        shutdown_threads()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is not None:
        run_exit_handlers()
    exit_now(status)


def webui_blocks(studio):
    """The web UI's page, to be served by the API's server at /ui; its uploads are swept as
    `voxmith webui` sweeps them (without, they stayed in the temporary folder until the server stopped)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from voxmith.webui.app import build_app
    from voxmith.webui.server import TEMP_MAX_AGE_S, TEMP_SWEEP_EVERY_S, private_upload_folder

    os.environ["GRADIO_TEMP_DIR"] = private_upload_folder()
    blocks = build_app(studio, delete_cache=(TEMP_SWEEP_EVERY_S, TEMP_MAX_AGE_S))
    blocks.queue(default_concurrency_limit=1)  # the web UI's long jobs run one at a time, as in `voxmith webui`
    return blocks


COMMANDS = [serve]
