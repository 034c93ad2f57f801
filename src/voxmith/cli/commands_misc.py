"""`voxmith demo`, `voxmith engines`, `voxmith info`."""

from __future__ import annotations

import time

import click

from voxmith.cli.commands_voices import format_report


DEMO_TEXT = ("Hello! This is voxmith, speaking in a voice cloned from two short clips, "
             "on your own computer.")


@click.command()
@click.option("--text", default=DEMO_TEXT, show_default=False, help="What the demo voice should say.")
@click.pass_obj
def demo(obj, text):
    """Import the bundled demo voice, analyse it and speak a sentence with it."""
    from voxmith.studio.speech import SpeakRequest

    studio = obj.studio
    progress = obj.progress()
    voice = studio.import_demo_voice(progress=progress)
    click.echo(f"Demo voice '{voice.name}' is in {voice.path}")
    report = studio.analyse_voice(voice.name, progress=progress)
    click.echo(format_report(report))
    click.echo("")
    # Timed here, around the whole call: the sidecar's timing starts after the voice is prepared,
    # and the first run's enrollment is what a new user waits for.
    started = time.perf_counter()
    result = studio.speak(SpeakRequest(text, voice=voice.name, seed=0), progress=progress)
    elapsed_s = time.perf_counter() - started
    progress.close()
    synthesis_s = result.record.total_s
    preparing = f"{elapsed_s - synthesis_s:.1f} s preparing the voice, then {synthesis_s:.1f} s speaking" \
        if elapsed_s - synthesis_s >= 0.05 else "the voice was already prepared"
    click.echo(f"Spoke {result.duration_s:.1f} s in {elapsed_s:.1f} s ({preparing}). Result and its JSON sidecar:")
    click.echo(str(result.path))


@click.command()
def engines():
    """List synthesis engines and what hardware they need."""
    from voxmith.engines import available_engines, engine_class
    from voxmith.errors import EngineError

    names = available_engines()
    if not names:
        click.echo("No synthesis engines are installed yet.")
    for name in names:
        try:
            cls = engine_class(name)
            needs = cls.device_needs
            where = "GPU recommended" if needs.gpu_recommended else "runs well on CPU"
            languages = ", ".join(cls.languages)
            click.echo(f"{name:<12} v{cls.version:<6} {cls.sample_rate_hz} Hz  {where}  speaks {languages}  "
                       f"{cls.description}")
            for option in cls.options:
                choices = f" ({' | '.join(option.choices)})" if option.choices else ""
                click.echo(f"{'':<12} speak {option.flag}{choices}: {option.help}")
            for term in cls.training_losses if cls.supports_training else ():
                click.echo(f"{'':<12} train init --loss-weight {term.key}=VALUE (default {term.weight:g}): "
                           f"{term.help}")
        except EngineError as err:
            click.echo(f"{name:<12} unavailable: {err}")


@click.command()
@click.pass_obj
def info(obj):
    """Show the workspace, the device that would be used and the PyTorch build."""
    from voxmith.engines.device import cpu_info, describe_torch

    studio = obj.studio
    click.echo(f"workspace: {studio.workspace.home}")
    click.echo(f"device:    {studio.device} (requested: {obj.device_request})")
    click.echo(f"torch:     {describe_torch()}")
    click.echo(f"cpu:       {cpu_info().summary()}")


@click.command()
@click.option("--listen", default=None, metavar="HOST:PORT",
              help="Address to serve on (default 127.0.0.1:7860). Other than loopback needs a token.")
@click.option("--share-token", envvar="VOXMITH_WEBUI_TOKEN", default=None,
              help="Password required by the page (needed when listening beyond this machine).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another host name the page may be opened by (a LAN name, a reverse proxy); repeatable. "
                   "Other names are refused (DNS rebinding).")
@click.option("--max-upload-mb", default=1024, show_default=True, help="Largest upload accepted, in MB.")
@click.pass_obj
def webui(obj, listen, share_token, allowed_hosts, max_upload_mb):
    """Open the studio in the browser (Gradio)."""
    from voxmith.webui.ports import ensure_port_free
    from voxmith.webui.server import check_access, launch, parse_listen

    address = parse_listen(listen)
    check_access(address, share_token)  # refuse before loading anything heavy
    ensure_port_free(address.host.strip("[]"), address.port)
    click.echo("Starting the voxmith web UI (Ctrl-C stops it)...")
    launch(obj.studio, listen, share_token, block=True, allowed_hosts=allowed_hosts, max_upload_mb=max_upload_mb)


COMMANDS = [demo, engines, info, webui]
