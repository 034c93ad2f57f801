"""`voxmith models list` and `voxmith models download ENGINE`: the model weights on this machine.

The engines declare their files (through the studio); this shell only prints and asks.
"""

from __future__ import annotations

import click

from voxmith.cli.progress import TqdmProgress

MODELS_DIR_HELP = ("Folder holding the engine's model files: searched first, and new downloads go there "
                   "(default for tortoise: $VOXMITH_TORTOISE_MODELS, $TORTOISE_MODELS_DIR, else the "
                   "workspace's models/tortoise/).")


@click.group()
def models():
    """Model weights: what is on this machine, and downloading what is missing."""


@models.command("list")
@click.argument("engine", required=False)
@click.option("--models-dir", type=click.Path(file_okay=False), default=None, help=MODELS_DIR_HELP)
@click.pass_obj
def list_models(obj, engine, models_dir):
    """Show each engine's model files (or ENGINE's): where each was found, or that it is missing."""
    from voxmith.download import size_text

    entries = obj.studio.model_files(engine, models_dir)
    if engine is not None and entries[0].error:  # the one engine asked for: an error (exit 1), not a listing
        raise click.ClickException(entries[0].error)
    for entry in entries:
        if entry.error:
            click.echo(f"{entry.engine}: unavailable ({entry.error})")
            continue
        click.echo(f"{entry.engine} ({entry.source}):" if entry.source else f"{entry.engine}:")
        if not entry.files:
            click.echo("  no model files of its own")
        width = max([22] + [len(f.name) for f in entry.files])  # engines may name files by their folders
        for f in entry.files:
            role = "needed" if f.required else "optional"
            click.echo(f"  {f.name:<{width}} {role:<8} ~{size_text(f.approx_bytes):<9} {_where_text(f)}")
        missing = entry.missing_required
        if missing and entry.downloadable:
            size = size_text(sum(f.approx_bytes for f in missing))
            click.echo(f"  {len(missing)} needed file(s) missing (~{size}): run `voxmith models download "
                       f"{entry.engine}`.")
        elif missing:
            click.echo(f"  {len(missing)} needed file(s) missing: reinstall {entry.source or 'the engine'}.")
        else:
            click.echo("  All needed files are present.")


def _where_text(model_file) -> str:
    from voxmith.download import size_text

    if model_file.path is None:
        return "missing"
    try:
        size = size_text(model_file.path.stat().st_size)
    except OSError:
        size = "unreadable"
    return f"{model_file.path}  ({model_file.found_by}, {size})"


@models.command("download")
@click.argument("engine")
@click.option("--models-dir", type=click.Path(file_okay=False), default=None, help=MODELS_DIR_HELP)
@click.option("--only", "only", multiple=True, metavar="NAME",
              help="Download just this file (repeatable), e.g. --only rlg_auto.pth.")
@click.option("--all", "everything", is_flag=True,
              help="Also download the optional files (tortoise: CVVP, the random-voice latents, the DVAE).")
@click.option("--version", "version", default=None, metavar="VERSION",
              help="The files of this model version (gpt-sovits: v2, v2Pro or v2ProPlus; default: the "
                   "engine's default version).")
@click.pass_obj
def download(obj, engine, models_dir, only, everything, version):
    """Download the files ENGINE needs (tortoise: about 4.3 GB), skipping files already present in
    any folder it looks in and resuming interrupted downloads. `voxmith models list` shows them."""
    from voxmith.download import size_text

    if sum(map(bool, (only, everything, version))) > 1:
        raise click.UsageError("Use only one of --only, --all and --version.")
    studio = obj.studio
    if only:  # a typo is a usage error, named before anything is fetched
        entry = studio.model_files(engine, models_dir)[0]
        known = [f.name for f in entry.files if f.downloadable]
        unknown = [name for name in only if name not in known]
        if unknown and known:
            raise click.BadParameter(f"unknown file(s) {', '.join(unknown)}; choose from {', '.join(known)}",
                                     param_hint="--only")
    plan = studio.plan_model_download(engine, only, everything, models_dir, version=version)
    for f in plan.present:
        click.echo(f"{f.name}: already present at {f.path} ({f.found_by})")
    if not plan.missing:
        click.echo("Nothing to download.")
        return
    click.echo(f"Downloading {len(plan.missing)} file(s), about {size_text(plan.approx_bytes)}, "
               f"to {plan.target} (an interrupted download resumes where it stopped).")
    bars = TqdmProgress(enabled=not obj.quiet, unit="B")
    try:
        paths = studio.download_models(plan, models_dir, progress=bars)
    finally:
        bars.close()
    for name, path in paths.items():
        click.echo(f"{name}: saved to {path}")


COMMANDS = [models]
