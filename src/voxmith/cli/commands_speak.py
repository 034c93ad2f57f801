"""`voxmith speak`, `voxmith reproduce`, `voxmith eval`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import click

from voxmith.assignments import split_assignments
from voxmith.errors import VoxmithError


def _read_text_file(path: str) -> str:
    """The file's text, decoded as UTF-8 or, failing that, as Windows-1252/Latin-1 (with a note)."""
    from voxmith.text.files import decode_text_file, describe_encoding, read_text_bytes

    try:
        if path == "-":
            data = read_text_bytes(sys.stdin.buffer, "standard input")
        else:
            with open(path, "rb") as stream:
                data = read_text_bytes(stream, path)
    except FileNotFoundError:
        raise VoxmithError(f"--text-file '{path}' does not exist.") from None
    except OSError as err:
        raise VoxmithError(f"Cannot read --text-file '{path}': {err.strerror}.") from None
    text, encoding = decode_text_file(data, path)
    if encoding in ("cp1252", "latin-1"):  # a guess (a byte-order mark would have been certain)
        click.echo(f"Note: '{path}' is not UTF-8; read it as {describe_encoding(encoding)}. If some letters "
                   "come out wrong, save the file as UTF-8.", err=True)
    return text


def print_conversion(result, play: bool) -> None:
    """What a conversion made: the engine's choices for this recording, speed, and the file."""
    details = result.record.conversion
    if "warp" in details:
        click.echo(f"warp {details['warp']:+.3f}, pitch {details.get('source_f0_hz')} Hz -> "
                   f"{details.get('target_f0_hz')} Hz (median of the voice)", err=True)
    _print_timing_and_path(result, "converted", play)


def _print_timing_and_path(result, verb: str, play: bool) -> None:
    record = result.record
    click.echo(f"{result.duration_s:.1f} s {verb} in {record.total_s:.1f} s "
               f"(real-time factor {record.real_time_factor:.2f})", err=True)
    click.echo(str(result.path))
    if play:
        from voxmith.cli.playback import play as play_file

        problem = play_file(result.path)
        if problem:
            click.echo(problem, err=True)


def _print_result(result, play: bool) -> None:
    from voxmith.studio.record import ConversionRecord

    record = result.record
    if isinstance(record, ConversionRecord):  # `reproduce` of a conversion
        print_conversion(result, play)
        return
    for warning in record.warnings:
        click.echo(f"warning: {warning}", err=True)
    for i, sentence in enumerate(record.sentences):
        scores = sentence.takes[sentence.chosen_take].scores
        if scores and (len(sentence.takes) > 1 or scores.get("wer")):
            click.echo(f"  sentence {i + 1}: take {sentence.chosen_take + 1}/{len(sentence.takes)} "
                       f"similarity {scores['similarity']:.3f}, WER {scores['wer']:.0%}", err=True)
    finetune = record.finetune
    weights = f"fine-tuned weights of run '{finetune.run}', step {finetune.step}" if finetune else "stock weights"
    click.echo(f"{record.engine_name} with {weights}", err=True)
    _print_timing_and_path(result, "of speech", play)


def _run_and_print(obj, speak, play: bool, resumable: bool = False) -> None:
    """Run `speak(progress)` and print its result; after Ctrl-C, say what was kept: the finished
    sentences as a shorter result, or (`resumable`, --text-file) for the same command to resume."""
    from voxmith.studio.speech import SpeakInterrupted

    progress = obj.progress()
    try:
        result = speak(progress)
    except KeyboardInterrupt as stopped:
        if not isinstance(stopped, SpeakInterrupted):
            progress.close()
            if resumable:
                click.echo("\nInterrupted. The finished sentences are kept: run the same command again to resume.",
                           err=True)
                sys.exit(130)  # said once (re-raised, the CLI said "Interrupted." a second time)
            raise
        progress.close()
        done = stopped.result.record.interrupted
        click.echo(f"\nInterrupted: the {done['sentences_done']} finished sentence(s) of {done['sentences_total']} "
                   "are saved (its sidecar says \"interrupted\"):", err=True)
        _print_result(stopped.result, False)
        sys.exit(130)
    progress.close()
    _print_result(result, play)


def _engine_options(engine: Optional[str], args: List[str]) -> Dict[str, str]:
    """Settings from the options the engine declares (`Engine.options`), e.g. `--preset fast`."""
    if not args:
        return {}
    from voxmith.engines import engine_class
    from voxmith.engines.registry import DEFAULT_ENGINE

    name = engine or DEFAULT_ENGINE
    declared = {option.flag: option for option in engine_class(name).options}
    known = ", ".join(declared) or "none"
    values, rest = {}, list(args)
    while rest:
        flag, _, value = rest.pop(0).partition("=")
        option = declared.get(flag)
        if option is None:
            raise VoxmithError(f"'{flag}' is not an option of speak or of the {name} engine (its own options: "
                               f"{known}).")
        if not value:
            if not rest:
                raise VoxmithError(f"{flag} needs a value.")
            value = rest.pop(0)
        if option.choices and value not in option.choices:
            raise VoxmithError(f"{flag} must be one of {', '.join(option.choices)}, not '{value}'.")
        values[option.setting] = value
    return values


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("text", required=False)
@click.option("--voice", "-v", help="Voice from the library.")
@click.option("--ref", "refs", multiple=True, type=click.Path(dir_okay=False),
              help="Clone straight from this clip (repeatable) instead of a library voice.")
@click.option("--text-file", type=click.Path(dir_okay=False, allow_dash=True),
              help="Read the text from a file ('-': standard input); UTF-8, or Windows-1252/Latin-1 with a note.")
@click.option("--engine", "-e", default=None, help="Synthesis engine (default: piper-vc).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file (default: results/VOICE/...).")
@click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")
@click.option("--candidates", "-n", type=click.IntRange(1, 16), default=1, show_default=True, help="Takes per sentence; the best is kept.")
@click.option("--seed", type=int, default=None,
              help="Random seed (default, or -1: random; the seed used is saved in the sidecar).")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE", help="Engine setting (repeatable).")
@click.option("--no-rank", is_flag=True, help="Skip scoring takes (faster; no re-generation).")
@click.option("--max-wer", type=click.FloatRange(0.0, 1.0), default=0.15, show_default=True, help="Re-generate a best take above this WER.")
@click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True, help="Extra takes at most for a sentence that misses words.")
@click.option("--play", is_flag=True, help="Play the result.")
@click.option("--run", "run", help="Speak with this training run's weights (default: what the voice uses).")
@click.option("--checkpoint", default="latest", show_default=True, help="With --run: latest, best or a step.")
@click.option("--stock", is_flag=True, help="Speak with the engine's stock weights even if the voice is fine-tuned.")
@click.pass_context
def speak(ctx, text, voice, refs, text_file, engine, output, force, candidates, seed, settings, no_rank,
          max_wer, retries, play, run, checkpoint, stock):
    """Say TEXT in a voice. Long text is split into sentences and joined with natural pauses.

    An engine may add options of its own (e.g. tortoise's --preset); `voxmith engines` lists them."""
    obj = ctx.obj
    from voxmith.studio.ranking import RankingSettings
    from voxmith.studio.record import FinetuneChoice
    from voxmith.studio.speech import MAX_SPEAK_TEXT_CHARS, SpeakRequest

    if text_file is not None:
        if text:
            raise VoxmithError("Give the text either as an argument or with --text-file, not both.")
        text = _read_text_file(text_file)
    if text and len(text) > MAX_SPEAK_TEXT_CHARS:  # not refused: --text-file resumes, and nothing waits on it
        click.echo(f"Note: the text is {len(text):,} characters long, more than the web UI or the HTTP API takes "
                   f"in one request ({MAX_SPEAK_TEXT_CHARS:,}). It becomes one file, held in memory until it is "
                   "written; `voxmith book` reads a long text chapter by chapter into a file per chapter.", err=True)
    if run and stock:
        raise VoxmithError("--run and --stock contradict each other; pick one.")
    if checkpoint != "latest" and not run:  # it would be ignored: the voice's own setting would speak
        raise VoxmithError(f"--checkpoint {checkpoint} goes with --run RUN (the run whose checkpoint to use).")
    finetune = FinetuneChoice.of_run(run, checkpoint) if run else \
        FinetuneChoice.stock() if stock else FinetuneChoice.voice_setting()
    engine_settings = split_assignments(settings, "--set")
    engine_settings.update(_engine_options(engine, ctx.args))
    request = SpeakRequest(
        text=text or "", voice=voice, refs=refs, engine=engine, settings=engine_settings, seed=seed,
        candidates=candidates, ranking=RankingSettings(max_wer=max_wer, regenerate_limit=retries),
        rank=not no_rank, output=Path(output) if output else None, overwrite=force, finetune=finetune,
        resumable=text_file is not None,  # long text: finished sentences survive an interruption
    )
    _run_and_print(obj, lambda progress: obj.studio.speak(request, progress=progress), play,
                   resumable=request.resumable)


@click.command()
@click.argument("sidecar", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file (default: results/...).")
@click.option("--force", is_flag=True, help="Overwrite the -o file if it exists.")
@click.pass_obj
def reproduce(obj, sidecar, output, force):
    """Make a result again from its JSON sidecar (same seed and settings: the same audio)."""
    _run_and_print(obj, lambda progress: obj.studio.reproduce(sidecar, Path(output) if output else None, force,
                                                              progress), False)


@click.command("eval")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--voice", "-v", help="Compare with this library voice.")
@click.option("--reference", "references", multiple=True, type=click.Path(dir_okay=False),
              help="Compare with this clip (repeatable) instead of a voice.")
@click.option("--text", help="What the files should say (default: the text in each file's sidecar, if any).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def evaluate(obj, files, voice, references, text, as_json):
    """Score audio files: speaker similarity to a voice, WER against the text, naturalness
    (DistillMOS, 1-5), duration."""
    progress = obj.progress()
    try:
        rows = obj.studio.evaluate(files, voice=voice, references=references, text=text, progress=progress)
    finally:
        progress.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'file':<40} {'dur s':>6} {'similarity':>10} {'WER':>6} {'MOS':>5}  transcript")
    for row in rows:
        wer = "-" if row["wer"] is None else f"{row['wer']:.0%}"
        click.echo(f"{fit_name(Path(row['file']).name, 40):<40} {row['duration_s']:>6.2f} "
                   f"{row['similarity']:>10.3f} {wer:>6} {row['naturalness_mos']:>5.2f}  {row['transcript']}")
    for row in rows:
        if row.get("warning"):
            click.echo(f"* {Path(row['file']).name}: {row['warning']}")


def fit_name(name: str, width: int) -> str:
    """`name` in at most `width` characters: a long one loses the middle of its stem, never its extension
    or its end (result names differ in their time stamp at the start and their text at the end, and
    `take1.wav` / `take1.mp3` differ only in the extension)."""
    if len(name) <= width:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension) > 8:
        stem, extension = name, ""
    else:
        extension = "." + extension
    room = width - len(extension) - 3  # 3: the "..." standing for the cut
    if room < 2:
        return name[:width]
    tail = room // 3
    return f"{stem[:room - tail]}...{stem[len(stem) - tail:]}{extension}"


COMMANDS = [speak, reproduce, evaluate]
