"""`voxmith book`: a text, Markdown or EPUB book read in a voice, by chapters, resumable."""

from __future__ import annotations

import sys

from pathlib import Path

import click


@click.command()
@click.argument("book", type=click.Path(dir_okay=False))
@click.option("--voice", "-v", help="Voice from the library.")
@click.option("--ref", "refs", multiple=True, type=click.Path(dir_okay=False),
              help="Read in the voice of this clip (repeatable) instead of a library voice.")
@click.option("--engine", "-e", default=None, help="Synthesis engine (default: piper-vc).")
@click.option("-o", "--output", "output_dir", type=click.Path(file_okay=False),
              help="Book folder (default: results/VOICE/<book>-book/). Running again resumes it.")
@click.option("--format", "audio_format", type=click.Choice(["m4b", "mp3", "wav", "flac"]), default="m4b",
              show_default=True, help="The joined book (m4b has chapter markers; others get a .cue sheet).")
@click.option("--candidates", "-n", type=click.IntRange(1, 16), default=1, show_default=True, help="Takes per sentence; the best is kept.")
@click.option("--seed", type=int, default=None, help="Random seed (default: random, kept in book.json).")
@click.option("--set", "settings", multiple=True, metavar="NAME=VALUE", help="Engine setting (repeatable).")
@click.option("--no-rank", is_flag=True, help="Skip scoring takes (faster; nothing is flagged for review).")
@click.option("--max-wer", type=click.FloatRange(0.0, 1.0), default=0.15, show_default=True, help="Re-generate a best take above this WER.")
@click.option("--retries", type=click.IntRange(0, 10), default=2, show_default=True, help="Extra takes at most for a sentence that misses words.")
@click.option("--sentence-pause", default=0.35, show_default=True, help="Seconds after a sentence.")
@click.option("--paragraph-pause", default=0.8, show_default=True, help="Seconds after a paragraph.")
@click.option("--chapter-pause", default=2.0, show_default=True, help="Seconds between chapters in the joined book.")
@click.option("--redo", "redo", multiple=True, metavar="SENTENCE_ID",
              help="Make this sentence again with new seeds (ids in manifest.json, e.g. c02-s0014); repeatable.")
@click.option("--run", "run", help="Read with this training run's weights (default: what the voice uses, as speak).")
@click.option("--checkpoint", default="latest", show_default=True, help="With --run: latest, best or a step.")
@click.option("--stock", is_flag=True, help="Read with the engine's stock weights even if the voice is fine-tuned.")
@click.pass_obj
def book(obj, book, voice, refs, engine, output_dir, audio_format, candidates, seed, settings, no_rank, max_wer,
         retries, sentence_pause, paragraph_pause, chapter_pause, redo, run, checkpoint, stock):
    """Read BOOK (.txt, .md or .epub) in a voice: one audio file per chapter, the whole book with
    chapter markers, and a manifest of every sentence. Interrupted? Run the same command again.
    In the text, [pause 1.5s] or <break time="700ms"/> adds a pause."""
    from voxmith.assignments import split_assignments
    from voxmith.errors import VoxmithError
    from voxmith.studio.book import BookRequest
    from voxmith.studio.ranking import RankingSettings
    from voxmith.studio.record import FinetuneChoice
    from voxmith.text.book import PauseSettings

    if run and stock:
        raise VoxmithError("--run and --stock contradict each other; pick one.")
    if checkpoint != "latest" and not run:  # it would be ignored: the voice's own setting would speak
        raise VoxmithError(f"--checkpoint {checkpoint} goes with --run RUN (the run whose checkpoint to use).")
    request = BookRequest(
        source=book, voice=voice, refs=refs, engine=engine, settings=split_assignments(settings, "--set"), seed=seed,
        candidates=candidates, ranking=RankingSettings(max_wer=max_wer, regenerate_limit=retries), rank=not no_rank,
        pauses=PauseSettings(sentence_pause, paragraph_pause, chapter_pause),
        output_dir=Path(output_dir) if output_dir else None, audio_format=audio_format,
        finetune=FinetuneChoice.of_run(run, checkpoint) if run else
        FinetuneChoice.stock() if stock else FinetuneChoice.voice_setting(),
    )
    progress = obj.progress()
    try:
        result = None
        for sentence_id in redo or [None]:
            result = obj.studio.book(request, redo=sentence_id, progress=progress)
    except KeyboardInterrupt:
        progress.close()
        click.echo("\nInterrupted. The finished sentences are kept: run the same command again to resume.", err=True)
        sys.exit(130)  # said once (re-raised, the CLI said "Interrupted." a second time)
    progress.close()
    book = result.record
    weights = f"fine-tuned weights of run '{book.finetune.run}', step {book.finetune.step}" if book.finetune \
        else "stock weights"
    click.echo(f"{len(book.chapters)} chapter(s), {len(book.sentences)} sentences, "
               f"{book.duration_s / 60:.1f} min, {book.engine_name} with {weights}; "
               f"manifest: {result.folder / 'manifest.json'}", err=True)
    if result.review:
        # What was heard, so a user can judge without opening the manifest (a misheard name is fine).
        click.echo(f"{len(result.review)} sentence(s) to review (their best take still failed a check after "
                   "the retries); listen to them and redo one with --redo ID:", err=True)
        listed = [s for s in book.sentences if s.id in set(result.review)]
        for sentence in listed[:REVIEW_LISTED]:
            click.echo(f"  {sentence.id}: \"{sentence.text}\" {_why_listed(sentence.scores, request.ranking)}", err=True)
        if len(listed) > REVIEW_LISTED:
            click.echo(f"  ... and {len(listed) - REVIEW_LISTED} more (manifest.json's review)", err=True)
    click.echo(str(result.book_path))


REVIEW_LISTED = 10  # sentences shown with what was heard; the manifest lists them all


def _why_listed(scores, settings) -> str:
    """Why a sentence is on the review list: what Whisper heard when the words failed (a misheard name
    is fine), else the ranking's own reason (a take that sounds broken may be heard right)."""
    from dataclasses import fields

    from voxmith.studio.ranking import TakeScores, refusal

    scores = scores or {}
    heard = f"heard as \"{str(scores.get('transcript', '')).strip()}\""
    known = {f.name for f in fields(TakeScores)}
    try:
        reason = refusal(TakeScores(**{k: v for k, v in scores.items() if k in known}), settings)
    except TypeError:  # scores of an older manifest without every field
        return heard
    if reason is None:  # made under other settings, or refused only joined with its neighbours
        return heard
    if reason.startswith("naturalness"):
        return reason
    return f"{heard} ({reason})"

COMMANDS = [book]
