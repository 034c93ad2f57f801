"""`voxmith convert`: a recording of anyone, converted into a voice."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("--voice", "-v", help="Voice from the library to convert into.")
@click.option("--ref", "refs", multiple=True, type=click.Path(dir_okay=False),
              help="Convert into the voice of this clip (repeatable) instead of a library voice.")
@click.option("--engine", "-e", default=None, help="Engine (default: piper-vc; it must support conversion).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file (default: results/VOICE/...).")
@click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE",
              help="Conversion setting (repeatable), e.g. f0_scale=1.1 or warp=0.1.")
@click.option("--play", is_flag=True, help="Play the result.")
@click.pass_obj
def convert(obj, recording, voice, refs, engine, output, force, settings, play):
    """Convert RECORDING (anyone speaking) into a voice: same words, timing and intonation, with the
    pitch moved into the voice's range. Long recordings are processed in pieces cut at pauses."""
    from voxmith.assignments import split_assignments
    from voxmith.cli.commands_speak import print_conversion
    from voxmith.studio.conversion import ConvertRequest

    request = ConvertRequest(source=recording, voice=voice, refs=refs, engine=engine,
                             settings=split_assignments(settings, "--set"), output=Path(output) if output else None,
                             overwrite=force)
    progress = obj.progress()
    result = obj.studio.convert(request, progress=progress)
    progress.close()
    print_conversion(result, play)


COMMANDS = [convert]
