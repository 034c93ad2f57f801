"""`voxmith train ...`: create, check, run, list and show fine-tuning runs."""

from __future__ import annotations

import json
import math
import sys
from shlex import quote

import click

from voxmith.assignments import split_assignments
from voxmith.engines.registry import DEFAULT_ENGINE


def format_run(summary, detailed: bool = False) -> str:
    best = summary.best
    best_text = f"best validation loss {best.val_loss:.4g} at step {best.step}" if best else \
        "not validated yet" if summary.validates else "never validated (no validation lines; no best checkpoint)"
    loss = "-" if summary.last_loss is None else f"{summary.last_loss:.4g}"
    head = (f"{summary.name:<20} {summary.engine:<9} dataset {summary.dataset:<16} {summary.progress_text}, "
            f"loss {loss}, {best_text}")
    if not detailed:
        return head
    lines = [f"Run '{summary.name}' in {summary.folder}",
             f"  engine {summary.engine}{' (LoRA)' if summary.lora else ''}, dataset '{summary.dataset}', "
             f"{summary.epochs} epochs",
             f"  progress: {summary.progress_text}, last loss {loss}",
             f"  {best_text}"]
    if summary.checkpoints:
        lines.append("  checkpoints: " + ", ".join(
            f"step {c.step}" + ("" if c.val_loss is None or math.isnan(c.val_loss) else f" (val {c.val_loss:.4g})")
            for c in summary.checkpoints))
    else:
        lines.append("  no checkpoints yet")
    for plot in summary.plots:
        lines.append(f"  plot: {plot}")
    lines.append(f"  metrics: {summary.folder / 'metrics.csv'}; TensorBoard: "
                 f"tensorboard --logdir {quote(str(summary.folder / 'tensorboard'))}")
    if summary.voices:
        lines.append(f"  voices using it: {', '.join(summary.voices)}")
    return "\n".join(lines)


def summary_dict(summary) -> dict:
    def checkpoint(info):
        return None if info is None else {"step": info.step, "epoch": info.epoch, "val_loss": info.val_loss,
                                          "path": str(info.path)}

    return {"name": summary.name, "engine": summary.engine, "dataset": summary.dataset, "lora": summary.lora,
            "step": summary.step, "total_steps": summary.total_steps, "epochs": summary.epochs,
            "last_loss": summary.last_loss, "latest": checkpoint(summary.latest), "best": checkpoint(summary.best),
            "checkpoints": [checkpoint(c) for c in summary.checkpoints],
            "plots": [str(p) for p in summary.plots], "voices": summary.voices, "folder": str(summary.folder)}


# The engines' own defaults (`Engine.training_defaults`, else `ScheduleConfig`); a test keeps them in step.
LR_HELP = ("Peak learning rate (default: 1e-3 for piper-vc, 1e-5 for tortoise, 1e-4 for gpt-sovits; sv2tts: "
           "the vocoder's 1e-4, the synthesizer follows its tts_schedule instead).")


@click.group()
def train():
    """Fine-tune an engine on a dataset: init, validate, run, list, show."""


@train.command()
@click.argument("name")
@click.option("--dataset", required=True, help="Dataset to train on (see 'voxmith dataset list').")
@click.option("--engine", default=DEFAULT_ENGINE, show_default=True, help="Engine to fine-tune: piper-vc, tortoise, gpt-sovits or sv2tts.")
@click.option("--epochs", type=int, help="Passes over the training lines (default depends on the engine).")
@click.option("--batch-size", type=int, help="Lines per batch (default: from the dataset size).")
@click.option("--grad-accumulation", type=int, help="Batches per optimizer step.")
@click.option("--lr", "learning_rate", type=float, help=LR_HELP)
@click.option("--scheduler", type=click.Choice(["multistep", "cosine"]), help="Learning-rate schedule.")
@click.option("--loss-weight", "loss_weights", multiple=True, metavar="NAME=VALUE",
              help="Weight of one of the engine's losses (repeatable), e.g. --loss-weight text=1 for tortoise "
                   "in a language other than English; `voxmith engines` lists each engine's losses and defaults.")
# Before engines declared their losses: TorToiSe's two, offered for every engine. Kept for old scripts.
@click.option("--text-weight", type=float, hidden=True)
@click.option("--mel-weight", type=float, hidden=True)
@click.option("--lora/--no-lora", default=None, help="Train small LoRA adapters instead of all weights.")
@click.option("--lora-rank", type=int, help="Rank of the LoRA adapters.")
@click.option("--mixed-precision/--no-mixed-precision", default=None, help="Compute in bfloat16 where safe.")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--set", "engine_settings", multiple=True, metavar="NAME=VALUE",
              help="One of the engine's own training settings (repeatable), e.g. --set stage=vocoder for sv2tts; "
                   "the README's section on the engine lists them.")
@click.pass_obj
def init(obj, name, dataset, engine, epochs, batch_size, grad_accumulation, learning_rate, scheduler,
         loss_weights, text_weight, mel_weight, lora, lora_rank, mixed_precision, seed, engine_settings):
    """Create run NAME: writes training/NAME/config.yaml with defaults from the dataset's size."""
    from voxmith.training.losses import parse_assignments

    old = [f"{loss}={value}" for loss, value in (("text", text_weight), ("mel", mel_weight)) if value is not None]
    weights = parse_assignments([*old, *loss_weights], obj.studio.training.loss_terms(engine), engine) \
        if old or loss_weights else None
    changes = {
        "schedule": {"batch_size": batch_size, "grad_accumulation": grad_accumulation,
                     "learning_rate": learning_rate, "scheduler": scheduler},
        "losses": {"weights": weights},
        "lora": {"enabled": lora, "rank": lora_rank},
        "misc": {"mixed_precision": mixed_precision, "seed": seed},
    }
    changes = {section: {k: v for k, v in values.items() if v is not None} for section, values in changes.items()}
    run = obj.studio.training.init(name, dataset, engine, epochs, {k: v for k, v in changes.items() if v},
                                   settings=split_assignments(engine_settings, "--set"))
    config = run.load_config()
    s = config.schedule
    click.echo(f"Created run '{name}': {engine} on dataset '{dataset}', {s.epochs} epochs, batch {s.batch_size} "
               f"x {s.grad_accumulation}, lr {s.learning_rate:g} ({s.scheduler}).")
    if config.engine.settings:
        click.echo("Engine settings: " + ", ".join(f"{k}={v}" for k, v in config.engine.settings.items()))
    if config.checkpoints.validate_every_steps == 0:
        click.echo(f"Note: dataset '{dataset}' has no validation lines, so this run is never validated and has no "
                   "'best' checkpoint: use it with `--checkpoint latest` (a dataset of 10 or more segments is "
                   "split into training and validation lines).")
    click.echo(f"Settings: {run.config_path} (edit it, then `voxmith train validate {quote(name)}`).")
    click.echo(f"Start with: voxmith train run {quote(name)}")


@train.command("validate")
@click.argument("name")
@click.pass_obj
def validate_run(obj, name):
    """Check run NAME's settings against its dataset; explain each problem."""
    problems = obj.studio.training.check(name)
    if not problems:
        click.echo(f"Run '{name}' is ready to train.")
        return
    click.echo(f"Run '{name}' has {len(problems)} problem(s):")
    for problem in problems:
        click.echo(f"  - {problem}")
    raise SystemExit(1)


@train.command("run")
@click.argument("name")
@click.option("--force-restart", is_flag=True, help="Delete the run's checkpoints and metrics and start over.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before --force-restart deletes checkpoints.")
@click.pass_obj
def run_training(obj, name, force_restart, yes):
    """Train run NAME, resuming from its last checkpoint. Type save, eval or quit (Enter) while it runs;
    Ctrl+C saves and stops. Multi-GPU: torchrun --nproc-per-node N -m voxmith train run NAME."""
    from voxmith.training.commands import is_main_process, stdin_commands

    training = obj.studio.training
    main = is_main_process()
    if main:  # before asking about --force-restart or printing how to steer a run that will not start
        training.refuse_if_busy(name)
    if force_restart and not yes and main and training.open(name).checkpoints.list():
        click.confirm(f"--force-restart deletes every checkpoint and the metrics of run '{name}'. Continue?",
                      abort=True)
    commands = stdin_commands() if main else None
    if main:
        click.echo("While training: type save, eval or quit and press Enter; Ctrl+C saves and stops.", err=True)
    progress = obj.progress() if main else None
    try:
        result = training.train(name, force_restart=force_restart, commands=commands, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    status = 130 if result.stopped == "interrupted" else 0  # 130: as every command stopped by Ctrl+C
    if not main:
        _leave(status)
        return
    where = f"resumed from step {result.resumed_from}" if result.resumed_from is not None else "started fresh"
    saved = f"; checkpoint {result.checkpoint.path}" if result.checkpoint else ""
    click.echo(f"Run '{name}' {result.stopped} at step {result.step} ({where}){saved}.")
    if result.stopped != "finished":
        click.echo(f"Resume with: voxmith train run {quote(name)}")
    else:
        click.echo(f"Use it: voxmith voices use VOICE --run {quote(name)} [--checkpoint best]")
    _leave(status)


def _leave(status: int) -> None:
    """Exit with `status` (0: return normally). A torchrun worker leaves at once instead, skipping
    the interpreter's shutdown (see voxmith.training.distributed.exit_worker)."""
    from voxmith.training.distributed import exit_worker, under_torchrun

    if under_torchrun():
        exit_worker(status)
    if status:
        sys.exit(status)


@train.command("list")
@click.pass_obj
def list_runs(obj):
    """List training runs and their progress."""
    summaries = obj.studio.training.summaries()  # a config.yaml broken by hand hides no other run
    if not summaries:
        click.echo("No training runs yet. Create one with 'voxmith train init NAME --dataset DATASET'.")
    for summary in summaries:
        if isinstance(summary, tuple):
            name, err = summary
            click.echo(f"{name}: cannot be read: {err}")
            continue
        click.echo(format_run(summary))


@train.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def show(obj, name, as_json):
    """Progress, checkpoints, best validation loss and plot files of run NAME."""
    summary = obj.studio.training.summary(name)
    click.echo(json.dumps(summary_dict(summary), indent=2) if as_json else format_run(summary, detailed=True))


COMMANDS = [train]
