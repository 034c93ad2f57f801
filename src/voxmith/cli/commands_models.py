"""`voxmith models list` and `voxmith models download tortoise`: the model weights on this machine."""

from __future__ import annotations

import click

from voxmith.cli.progress import TqdmProgress

MODELS_DIR_HELP = ("Folder holding the TorToiSe checkpoints (default: $VOXMITH_TORTOISE_MODELS, "
                   "$TORTOISE_MODELS_DIR, else the workspace's models/tortoise/).")


@click.group()
def models():
    """Model weights: what is on this machine, and downloading what is missing."""


@models.command("list")
@click.option("--models-dir", type=click.Path(file_okay=False), default=None, help=MODELS_DIR_HELP)
@click.pass_obj
def list_models(obj, models_dir):
    """Show each TorToiSe checkpoint: where it was found, or that it is missing."""
    from voxmith.download import size_text
    from voxmith.engines.tortoise import checkpoints as ckpt

    workspace_models = obj.studio.workspace.models_dir
    found = ckpt.find_checkpoints(ckpt.ALL_NAMES, models_dir, workspace_models)
    click.echo(f"TorToiSe checkpoints ({ckpt.REPO_ID}):")
    for spec in ckpt.CHECKPOINTS:
        role = "needed" if spec.required else "optional"
        click.echo(f"  {spec.name:<22} {role:<8} ~{size_text(spec.approx_bytes):<9} "
                   f"{_where_text(found[spec.name])}")
    missing = [name for name in ckpt.REQUIRED_NAMES if found[name] is None]
    if missing:
        click.echo(f"{len(missing)} needed file(s) missing (~{size_text(ckpt.estimated_bytes(missing))}): "
                   "run `voxmith models download tortoise`.")
    else:
        click.echo("All needed files are present.")


def _where_text(location) -> str:
    from voxmith.download import size_text

    if location is None:
        return "missing"
    return f"{location.path}  ({location.source}, {size_text(location.path.stat().st_size)})"


@models.command("download")
@click.argument("engine", type=click.Choice(["tortoise"]))
@click.option("--models-dir", type=click.Path(file_okay=False), default=None, help=MODELS_DIR_HELP)
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Download just this file (repeatable), e.g. --only rlg_auto.pth.")
@click.option("--all", "everything", is_flag=True,
              help="Also download the optional files (CVVP and the random-voice latents).")
@click.pass_obj
def download(obj, engine, models_dir, only, everything):
    """Download the checkpoints an engine needs (TorToiSe: about 4.3 GB), skipping files already
    present in any known folder and resuming interrupted downloads."""
    from voxmith.download import size_text
    from voxmith.engines.tortoise import checkpoints as ckpt

    names = _requested_names(ckpt, only, everything)
    workspace_models = obj.studio.workspace.models_dir
    found = ckpt.find_checkpoints(names, models_dir, workspace_models)
    for name, location in found.items():
        if location is not None:
            click.echo(f"{name}: already present at {location.path} ({location.source})")
    missing = [name for name in names if found[name] is None]
    if not missing:
        click.echo("Nothing to download.")
        return
    target = ckpt.download_dir(models_dir, workspace_models)
    click.echo(f"Downloading {len(missing)} file(s), about {size_text(ckpt.estimated_bytes(missing))}, "
               f"to {target} (an interrupted download resumes where it stopped).")
    bars = TqdmProgress(enabled=not obj.quiet, unit="B")
    try:
        paths = ckpt.download_checkpoints(missing, target, progress=bars)
    finally:
        bars.close()
    for name, path in paths.items():
        click.echo(f"{name}: saved to {path}")


def _requested_names(ckpt, only, everything) -> tuple:
    if only and everything:
        raise click.UsageError("Use either --only or --all, not both.")
    if everything:
        return ckpt.ALL_NAMES
    if only:
        unknown = [name for name in only if name not in ckpt.BY_NAME]
        if unknown:
            raise click.BadParameter(f"unknown file(s) {', '.join(unknown)}; choose from "
                                     f"{', '.join(ckpt.ALL_NAMES)}", param_hint="--only")
        return tuple(dict.fromkeys(only))  # keep order, drop repeats
    return ckpt.REQUIRED_NAMES


COMMANDS = [models]
