"""`voxmith serve`: the HTTP API (OpenAI-compatible speech, and the studio's own endpoints)."""

from __future__ import annotations

import click


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
    blocks = _webui_blocks(obj.studio) if webui else None
    server, address = make_server(obj.studio, listen, token, workers, blocks, allowed_hosts,
                                  log_level="warning" if obj.quiet else "info")
    click.echo(describe(address, webui), err=True)
    click.echo("SIGTERM or Ctrl-C stops it after the requests in progress.", err=True)
    server.run()


def _webui_blocks(studio):
    """The web UI's page, to be served by the API's server at /ui."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from voxmith.webui.app import build_app
    from voxmith.webui.server import private_upload_folder

    os.environ["GRADIO_TEMP_DIR"] = private_upload_folder()
    blocks = build_app(studio)
    blocks.queue(default_concurrency_limit=1)  # the web UI's long jobs run one at a time, as in `voxmith webui`
    return blocks


COMMANDS = [serve]
