"""Entry point of the `voxmith` command and its global options.

Every `VoxmithError` is printed as 'Error: <message>' with exit code 1; an unexpected exception
is summarised in one line (with --debug for the traceback); Ctrl-C exits with 130.
"""

from __future__ import annotations

import errno
import logging
import sys
import traceback
import warnings

import click

from voxmith.cli import interrupts
from voxmith.version import __version__
from voxmith.errors import VoxmithError


class StudioContext:
    """What every sub-command needs: the options, and a lazily opened Studio."""

    def __init__(self, home, device, debug, quiet):
        self.home, self.device_request, self.debug, self.quiet = home, device, debug, quiet
        self._studio = None

    @property
    def studio(self):
        if self._studio is None:
            from voxmith.studio import Studio

            self._studio = Studio(self.home, self.device_request)
        return self._studio

    def progress(self):
        from voxmith.cli.progress import TqdmProgress

        return TqdmProgress(enabled=not self.quiet)


# Global options a user naturally puts at the end (`voxmith speak ... -q`, `... --device cpu`): taken
# from anywhere before a `--`, as if given before the command (no command has options of these names;
# `--device cuda` after `speak` was read as the text "--device" and an unknown option 'cuda').
GLOBAL_FLAGS = ("-q", "--quiet", "--debug")
GLOBAL_OPTIONS = ("--home", "--device")  # these take a value


def hoist_global_options(args: list) -> list:
    """`args` with the global flags and options (and their values) moved in front of the command."""
    end = args.index("--") if "--" in args else len(args)
    front, rest, i = [], [], 0
    while i < end:
        arg = args[i]
        if arg in GLOBAL_FLAGS or arg.partition("=")[0] in GLOBAL_OPTIONS and "=" in arg:
            front.append(arg)
        elif arg in GLOBAL_OPTIONS and i + 1 < end:
            front += [arg, args[i + 1]]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return front + rest + args[end:]


class FriendlyGroup(click.Group):
    """Turns errors into messages instead of tracebacks."""

    def parse_args(self, ctx, args):
        if ctx.parent is None:
            args = hoist_global_options(list(args))
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            result = super().invoke(ctx)
            # A Ctrl-C dropped inside C code after the command's last progress event (or in a command
            # without any) would vanish: it stops here, so the shell sees 130 as for any Ctrl-C.
            interrupts.raise_if_lost()
            return result
        except VoxmithError as err:
            raise click.ClickException(str(err)) from None
        except KeyboardInterrupt:
            click.echo("\nInterrupted.", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as err:
            problem = _file_system_problem(err) if isinstance(err, OSError) else None
            if problem is not None:  # a read-only or full workspace: the user can act on it
                raise click.ClickException(problem) from None
            # a bug: say so briefly unless debugging
            if ctx.obj is not None and getattr(ctx.obj, "debug", False):
                traceback.print_exc()
            raise click.ClickException(_bug_message(err)) from None


def _bug_message(err: BaseException) -> str:
    return (f"Unexpected {type(err).__name__}: {err}. This is a bug in voxmith; re-run with "
            "--debug to see the details and please report them.")


# What a user can do about a file system that refuses a write; other OSErrors remain bugs.
_FILE_SYSTEM_ADVICE = {
    errno.EACCES: "check the folder's permissions, or choose a writable workspace with --home",
    errno.EPERM: "check the folder's permissions, or choose a writable workspace with --home",
    errno.EROFS: "the file system is read-only; choose a writable workspace with --home",
    errno.ENOSPC: "the disk is full; free some space and try again",
    errno.EDQUOT: "the disk quota is used up; free some space and try again",
    # paths the user typed (-o, --home, files): a mistake to correct, not a bug
    errno.ENAMETOOLONG: "a file or folder name in it is too long; choose a shorter one",
    errno.ENOTDIR: "a part of that path is a file, not a folder; choose another path",
}


def _file_system_problem(err: OSError) -> str | None:
    advice = _FILE_SYSTEM_ADVICE.get(err.errno)
    if advice is None:
        return None
    where = f" '{err.filename}'" if err.filename else ""
    return f"The file system refused{where}: {err.strerror or err}; {advice}."


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="voxmith")
@click.option("--home", type=click.Path(file_okay=False), envvar="VOXMITH_HOME",
              help="Workspace folder (default: $VOXMITH_HOME or ~/.local/share/voxmith).")
@click.option("--device", default="auto", show_default=True,
              help="Compute device: auto, cpu, cuda, cuda:N or mps.")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.pass_context
def cli(ctx, home, device, debug, quiet):
    """voxmith: clone a voice from a few clips and make it say anything, locally."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s")
    interrupts.install()
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    ctx.obj = StudioContext(home, device, debug, quiet)


def _register_commands() -> None:
    from voxmith.cli import (commands_book, commands_convert, commands_dataset, commands_misc, commands_models,
                             commands_serve, commands_speak, commands_train, commands_voices)

    cli.add_command(commands_voices.voices)
    cli.add_command(commands_dataset.dataset)
    for command in (commands_speak.COMMANDS + commands_convert.COMMANDS + commands_book.COMMANDS
                    + commands_train.COMMANDS + commands_models.COMMANDS + commands_misc.COMMANDS
                    + commands_serve.COMMANDS):
        cli.add_command(command)


_register_commands()


def main() -> None:
    cli(prog_name="voxmith")
