"""`voxmith dataset ...`: prepare, show, edit, list, remove transcribed datasets."""

from __future__ import annotations

import json

import click

from voxmith.errors import VoxmithError


def format_summary(summary: dict) -> str:
    lines = [f"Dataset '{summary['name']}' in {summary['path']}",
             f"  {summary['segments']} segments from {summary['sources']} recording(s): {summary['usable']} usable "
             f"({summary['train']} train, {summary['validation']} validation), {summary['dropped']} dropped, "
             f"{summary['untranscribed']} not yet transcribed",
             f"  {summary['total_duration_s'] / 60:.1f} min of usable audio"]
    if summary["histogram"]:
        lines.append("  segment lengths:")
        peak = max(h["count"] for h in summary["histogram"])
        for h in summary["histogram"]:
            label = f"{h['from_s']:>2}-{h['to_s']}s" if h["to_s"] else f"{h['from_s']}s+"
            lines.append(f"    {label:<8} {'#' * max(1, round(30 * h['count'] / peak))} {h['count']}")
    if summary["note"]:
        lines.append(f"  note: {summary['note']}")
    if summary["flagged"]:
        lines.append(f"  flagged segments ({len(summary['flagged'])}):")
        for f in summary["flagged"]:
            lines.append(f"    {f['id']}: {', '.join(f['flags'])} | {f['transcript'] or ''}")
    return "\n".join(lines)


@click.group()
def dataset():
    """Build transcribed datasets (LJSpeech layout) from long recordings."""


@dataset.command()
@click.argument("name")
@click.option("--from", "sources", multiple=True, required=True,
              help="A voice, an audio file or a folder of recordings (repeatable).")
@click.option("--language", default="en", show_default=True, help="Whisper language code, or 'auto'.")
@click.option("--model", default=None, help="faster-whisper model name or folder (default: bundled base).")
@click.option("--validation-ratio", default=0.05, show_default=True, type=float)
@click.option("--min-seconds", default=2.0, show_default=True, type=float)
@click.option("--max-seconds", default=12.0, show_default=True, type=float)
@click.option("--sample-rate", default=22050, show_default=True, type=int)
@click.option("--redo", is_flag=True, help="Re-slice and re-transcribe everything (edits are lost).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before --redo discards edits.")
@click.pass_obj
def prepare(obj, name, sources, language, model, validation_ratio, min_seconds, max_seconds, sample_rate,
            redo, yes):
    """Slice recordings at pauses, transcribe them and write dataset NAME (resumes if interrupted)."""
    from voxmith.datasets import PrepareSettings

    studio = obj.studio
    if redo and not yes and (studio.datasets.path_for(name) / "segments.json").exists():
        record = studio.datasets.get(name).load()
        edited = sum(bool(s.get("edited")) for s in record["segments"])
        if edited:
            click.confirm(f"--redo discards {edited} edited transcript(s) in '{name}'. Continue?", abort=True)
    settings = PrepareSettings(language=language, model=model, validation_ratio=validation_ratio,
                               min_seconds=min_seconds, max_seconds=max_seconds, sample_rate_hz=sample_rate)
    progress = obj.progress()
    summary = studio.prepare_dataset(name, sources, settings, redo=redo, progress=progress)
    progress.close()
    click.echo(format_summary(summary))


@dataset.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(obj, name, as_json):
    """Summary: segments, duration, length histogram, flagged segments."""
    summary = obj.studio.datasets.get(name).summary()
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@dataset.command()
@click.argument("name")
@click.argument("segment")
@click.option("--text", help="The corrected transcript.")
@click.option("--drop", is_flag=True, help="Leave the segment out of the dataset.")
@click.option("--restore", is_flag=True, help="Bring a dropped segment back.")
@click.pass_obj
def edit(obj, name, segment, text, drop, restore):
    """Fix a segment's transcript or drop it (SEGMENT: id like NAME_00012, or 12)."""
    if text is None and not drop and not restore:
        raise VoxmithError("Say what to change: --text \"...\", --drop or --restore.")
    entry = obj.studio.datasets.get(name).edit(segment, text=text, drop=drop, restore=restore)
    state = "dropped" if entry.get("dropped") else f"in {entry.get('split') or 'no list'}"
    click.echo(f"{entry['id']} ({state}): {entry.get('transcript') or ''}")


@dataset.command("list")
@click.pass_obj
def list_datasets(obj):
    """List datasets in the workspace."""
    names = obj.studio.datasets.names()
    if not names:
        click.echo("No datasets yet. Create one with 'voxmith dataset prepare NAME --from VOICE_OR_FILES'.")
    for name in names:
        try:
            s = obj.studio.datasets.get(name).summary()
        except VoxmithError as err:  # one damaged dataset does not hide the others
            click.echo(f"{name:<24} cannot be read: {err}")
            continue
        click.echo(f"{name:<24} {s['usable']:>5} segments  {s['total_duration_s'] / 60:6.1f} min")


@dataset.command()
@click.argument("name")
@click.option("-y", "--yes", is_flag=True)
@click.pass_obj
def remove(obj, name, yes):
    """Delete dataset NAME (its segment audio and transcripts)."""
    obj.studio.datasets.get(name)
    if not yes:
        click.confirm(f"Delete dataset '{name}'?", abort=True)
    obj.studio.datasets.remove(name)
    click.echo(f"Removed dataset '{name}'.")
