"""`voxmith demo`, `voxmith engines`, `voxmith info`."""

from __future__ import annotations

import click

from voxmith.cli.commands_voices import format_report


@click.command()
@click.pass_obj
def demo(obj):
    """Import the bundled demo voice, analyse it and (once an engine is installed) speak."""
    studio = obj.studio
    progress = obj.progress()
    voice = studio.import_demo_voice(progress=progress)
    click.echo(f"Demo voice '{voice.name}' is in {voice.path}")
    report = studio.analyse_voice(voice.name, progress=progress)
    progress.close()
    click.echo(format_report(report))


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
            click.echo(f"{name:<12} v{cls.version:<6} {cls.sample_rate_hz} Hz  {where}  {cls.description}")
        except EngineError as err:
            click.echo(f"{name:<12} unavailable: {err}")


@click.command()
@click.pass_obj
def info(obj):
    """Show the workspace, the device that would be used and the PyTorch build."""
    from voxmith.engines.device import describe_torch

    studio = obj.studio
    click.echo(f"workspace: {studio.workspace.home}")
    click.echo(f"device:    {studio.device} (requested: {obj.device_request})")
    click.echo(f"torch:     {describe_torch()}")


COMMANDS = [demo, engines, info]
