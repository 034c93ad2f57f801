"""`voxmith voices ...`: add, list, show and remove voices."""

from __future__ import annotations

import json

import click

from voxmith.assignments import split_assignments


def format_report(report) -> str:
    """The `voices show` table and advice as text."""
    lines = [f"Voice '{report.name}': {len(report.clips)} clip(s), {report.total_duration_s:.1f} s total, "
             f"{report.total_speech_s:.1f} s of speech", ""]
    header = f"{'clip':<28} {'dur s':>6} {'rate':>6} {'ch':>2} {'LUFS':>6} {'peak':>6} {'clip%':>6} " \
             f"{'SNR':>5} {'speech':>6} {'consist':>7}"
    lines += [header, "-" * len(header)]
    for clip in report.clips:
        s = clip.stats
        consistency = "-" if clip.consistency is None else f"{clip.consistency:.3f}"
        lines.append(
            f"{clip.file[:28]:<28} {s.duration_s:>6.2f} {s.sample_rate_hz:>6} {s.channels:>2} "
            f"{s.loudness_lufs:>6.1f} {s.peak_dbfs:>6.1f} {100 * s.clipped_fraction:>6.2f} "
            f"{s.snr_db:>5.0f} {s.speech_ratio:>6.0%} {consistency:>7}")
        for flag in clip.flags:
            lines.append(f"    ! {flag}")
    lines.append("")
    lines += [f"* {line}" for line in report.advice]
    return "\n".join(lines)


@click.group()
def voices():
    """Manage voices: folders of clips of one speaker."""


@voices.command("add")
@click.argument("name")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--force", is_flag=True,
              help="Replace an existing voice of this name (after asking; its clips move to the trash).")
@click.option("--append", is_flag=True, help="Add the clips to an existing voice.")
@click.option("-y", "--yes", is_flag=True, help="With --force: do not ask before replacing.")
@click.pass_obj
def add(obj, name, files, force, append, yes):
    """Create voice NAME from copies of FILES (your files are never changed); a folder stands for the
    audio files in it."""
    library = obj.studio.voices
    if force and not append and not yes and library.exists(name):
        old = library.get(name)
        by_hand = len(old.hand_added_clips)
        extra = f", {by_hand} of them added by hand to the folder" if by_hand else ""
        click.confirm(f"Replace voice '{name}' ({len(old.clip_paths)} clip(s){extra})? "
                      f"Its clips will be moved to {library.trash_dir}.", abort=True)
    progress = obj.progress()
    voice = library.add(name, files, force=force, append=append, progress=progress)
    progress.close()
    click.echo(f"Voice '{voice.name}' has {len(voice.clip_paths)} clip(s) in {voice.path}")
    replaced = voice.metadata.get("replaced") if force else None
    if replaced:
        click.echo(f"The clips it had before are in {replaced['backup']} (move them back to undo).")


@voices.command("list")
@click.pass_obj
def list_voices(obj):
    """List voices in the workspace."""
    items = obj.studio.voices.list()
    if not items:
        click.echo("No voices yet. Add one with 'voxmith voices add NAME CLIP...' or run 'voxmith demo'.")
        return
    for voice in items:
        finetune = voice.listed_metadata().get("finetune")
        uses = f"  fine-tuned: run '{finetune['run']}' ({finetune['checkpoint']}, {finetune['engine']})" \
            if finetune else ""
        click.echo(f"{voice.name:<24} {len(voice.clip_paths):>3} clip(s){uses}")


@voices.command("use")
@click.argument("name")
@click.option("--run", "run", help="Training run whose weights the voice speaks with.")
@click.option("--checkpoint", default="latest", show_default=True,
              help="latest, best (lowest validation loss) or a step number.")
@click.option("--stock", is_flag=True, help="Go back to the engine's stock weights.")
@click.pass_obj
def use(obj, name, run, checkpoint, stock):
    """Make voice NAME speak with a fine-tuned run's weights (or --stock ones) from now on.

    piper-vc weights are first checked on the voice (its intelligibility guard, as at enrollment):
    what the fine-tune adds is backed off until Whisper hears the voice as well as the base voice,
    and weights that babble even then are refused, the voice keeping its current setting."""
    from voxmith.errors import VoxmithError

    if bool(run) == stock:
        raise VoxmithError("Say which weights to use: --run RUN [--checkpoint latest|best|STEP], or --stock.")
    progress = obj.progress()
    try:
        choice = obj.studio.training.use(name, None if stock else run, checkpoint, progress=progress)
    finally:
        progress.close()
    if choice is None:
        click.echo(f"Voice '{name}' speaks with the stock weights again.")
    else:
        click.echo(f"Voice '{name}' now speaks with run '{run}' ({checkpoint}: step {choice['step']} now) "
                   f"when the {choice['engine']} engine is used.")
        if choice.get("check"):
            click.echo(format_finetune_check(choice["check"]))


@voices.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
@click.option("--engine", default=None,
              help="Show this engine's enrollment notes (default: the default engine's), e.g. gpt-sovits: "
                   "the reference stretch and its transcript.")
@click.pass_obj
def show(obj, name, as_json, engine):
    """Analyse a voice's clips: levels, noise, speech, speaker consistency, advice."""
    progress = obj.progress()
    report = obj.studio.analyse_voice(name, progress=progress)
    progress.close()
    notes = obj.studio.enrollment_notes(name, engine) if engine else obj.studio.enrollment_notes(name)
    kept = obj.studio.voice_engine_settings(name, engine) if engine else {}
    finetune = obj.studio.voices.get(name).metadata.get("finetune")  # with its check (`voices use`)
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "enrollment": notes, "finetune": finetune,
                               **({"engine_settings": kept} if engine else {})}, indent=2))
        return
    click.echo(format_report(report))
    if engine and notes and "errors" not in notes:  # not the intelligibility guard's notes
        click.echo(format_engine_notes(engine, notes))
    else:
        click.echo(format_enrollment(notes))
    if finetune and finetune.get("check"):
        click.echo(format_finetune_check(finetune["check"]))
    if kept:
        click.echo(f"* Settings this voice keeps for {engine}: "
                   + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in kept.items()))


def format_finetune_check(check: dict) -> str:
    """The intelligibility check of the fine-tuned weights a voice uses (`voices use`) as text."""
    lines = [f"* Fine-tune check (step {check['step']}): {check['errors']} word errors in {check['words']} words "
             f"({check['base_errors']} for the unconverted base voice)."]
    if check.get("reduced"):
        lines.append("* To keep the voice intelligible with these weights, the check reduced:")
        lines += [f"    - {step}" for step in check["reduced"]]
        if check.get("strengths", {}).get("network", 1.0) <= 0:
            # The network is what the fine-tune trained; without it only the run's conversion
            # statistics remain, which is easy to miss in the list above.
            lines.append("* The fine-tune's network is off: the voice keeps only the run's conversion statistics "
                         "(closer to the stock voice). More or cleaner training data usually helps; "
                         "`voxmith voices use NAME --stock` goes back to the stock weights.")
    else:
        lines.append("* The fine-tuned weights are used at full strength.")
    return "\n".join(lines)


def format_engine_notes(engine: str, notes: dict) -> str:
    """Another engine's enrollment notes, one `key: value` line each."""
    lines = [f"* {engine} enrollment:"]
    for key, value in notes.items():
        lines.append(f"    {key}: {json.dumps(value, ensure_ascii=False)}")
    return "\n".join(lines)


@voices.command("settings")
@click.argument("name")
@click.option("--engine", required=True, help="The engine whose settings the voice keeps.")
@click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE",
              help="Keep this setting for the voice (repeatable), e.g. --set reference_text=\"...\".")
@click.option("--unset", "unset", multiple=True, metavar="KEY", help="Forget a kept setting (repeatable).")
@click.pass_obj
def settings(obj, name, engine, pairs, unset):
    """Show or change the engine settings voice NAME keeps: they apply to every `speak` and `book`
    with that engine (settings given on the command line win). E.g. correct the transcript of
    gpt-sovits' reference: voxmith voices settings alice --engine gpt-sovits --set reference_text="..."."""
    values = split_assignments(pairs, "--set")
    kept = obj.studio.set_voice_engine_settings(name, engine, values, tuple(k.replace("-", "_") for k in unset)) if values or unset \
        else obj.studio.voice_engine_settings(name, engine)
    if not kept:
        click.echo(f"Voice '{name}' keeps no settings for {engine}.")
    for key, value in kept.items():
        click.echo(f"{key}={value}")


def format_enrollment(notes) -> str:
    """The default engine's enrollment notes (its intelligibility guard) as text."""
    if notes is None:
        return "* Not enrolled for these clips yet: the first `speak` enrolls the voice."
    lines = []
    if notes.get("base_voice"):
        lines.append(f"* Base voice: {notes['base_voice']['name']} ({notes['base_voice']['reason']}).")
    lines += [f"* Enrollment check: {notes['errors']} word errors in {notes['words']} words "
              f"({notes['base_errors']} for the unconverted base voice)."]
    if notes.get("passed") is False:
        lines.append(f"  ! More than the {notes['tolerance']} allowed above the base voice even with the conversion backed "
                     "off: it speaks as the base voice at the voice's pitch, and its clips may not be clean speech "
                     "of one person (see the clip flags above).")
    if notes["reduced"]:
        lines.append("* To keep the voice intelligible, enrollment reduced:")
        lines += [f"    - {step}" for step in notes["reduced"]]
    else:
        lines.append("* Nothing had to be reduced to keep the voice intelligible.")
    if notes.get("natural"):
        lines.append(f"* Naturalness weighed against similarity: {notes['natural']}.")
    return "\n".join(lines)


@voices.command("remove")
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def remove(obj, name, yes):
    """Remove voice NAME: its folder moves to the workspace's trash (your originals are untouched)."""
    voice = obj.studio.voices.get(name, to_create=False)
    if not yes:
        click.confirm(f"Remove voice '{name}' ({len(voice.clip_paths)} clip(s) in {voice.path})? "
                      f"It will be moved to {obj.studio.voices.trash_dir}.", abort=True)
    backup = obj.studio.voices.remove(name)
    click.echo(f"Removed voice '{name}'; it is in {backup} (move it back to undo, delete it to free the space).")
