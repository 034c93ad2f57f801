"""Training tab: create a fine-tuning run for a dataset, start or resume it in the background,
watch its progress and loss curve, send save / validate / stop, and give a voice its weights."""

from __future__ import annotations

import gradio as gr

from voxmith.assignments import split_assignments
from voxmith.engines.registry import DEFAULT_ENGINE
from voxmith.errors import VoxmithError
from voxmith.studio.training_jobs import TrainingJobs
from voxmith.training.losses import parse_assignments
from voxmith.webui.progress import friendly, to_gradio

RUN_HEADERS = ["run", "engine", "dataset", "progress", "last loss", "best validation"]
POLL_SECONDS = 2.0


def _runs_table(training, summaries=None):
    rows = []
    for s in training.summaries() if summaries is None else summaries:
        if isinstance(s, tuple):
            rows.append([s[0], "-", "-", f"cannot be read: {s[1]}", "-", "-"])
            continue
        best = f"{s.best.val_loss:.4g} (step {s.best.step})" if s.best else "-"
        rows.append([s.name, s.engine + (" + LoRA" if s.lora else ""), s.dataset, s.progress_text,
                     "-" if s.last_loss is None else f"{s.last_loss:.4g}", best])
    return rows or [[""] * len(RUN_HEADERS)]


def _weights_hint(training, engine):
    """The engine's losses at their default weights, e.g. 'text=0.01, mel=1'."""
    try:
        return ", ".join(f"{t.key}={t.weight:g}" for t in training.loss_terms(engine)) if engine else ""
    except VoxmithError:
        return ""


def _checkpoint_choices(summary):
    return ["latest", "best"] + [str(c.step) for c in summary.checkpoints]


def build(studio, voice_choices):
    training = studio.training
    jobs = TrainingJobs(training)
    with gr.Tab("Training", id="training") as tab:
        with gr.Row():
            with gr.Column(scale=1):
                gr.Markdown("### New run")
                name = gr.Textbox(label="Run name", elem_id="tr-name")
                dataset = gr.Dropdown(choices=studio.datasets.names(), label="Dataset", elem_id="tr-dataset")
                engines = training.trainable_engines()
                first = DEFAULT_ENGINE if DEFAULT_ENGINE in engines else (engines or [None])[0]
                engine = gr.Radio(choices=engines, value=first, label="Engine", elem_id="tr-engine")
                # Only the chosen engine's losses: its names and defaults are the placeholder.
                weights = gr.Textbox(label="Loss weights (NAME=VALUE, ...; blank: the engine's defaults)",
                                     placeholder=_weights_hint(training, first), elem_id="tr-weights")
                # The engine's own training settings, as the CLI's `train init --set NAME=VALUE`.
                engine_settings = gr.Textbox(
                    label="Engine settings (NAME=VALUE, one per line; blank: the engine's defaults)",
                    placeholder="sv2tts: stage=vocoder", lines=1, elem_id="tr-settings")
                with gr.Row():
                    epochs = gr.Number(value=None, precision=0, label="Epochs (blank: engine default)",
                                       elem_id="tr-epochs")
                    lora = gr.Checkbox(value=False, label="LoRA adapters (tortoise)", elem_id="tr-lora")
                create = gr.Button("Create run", variant="primary", elem_id="tr-create")
                create_status = gr.Markdown(elem_id="tr-create-status")
            with gr.Column(scale=2):
                gr.Markdown("### Train")
                run = gr.Dropdown(choices=training.names(), label="Run", elem_id="tr-run")
                with gr.Row():
                    start = gr.Button("Start / resume", variant="primary", elem_id="tr-start")
                    restart = gr.Checkbox(value=False, label="Restart from scratch (deletes checkpoints)",
                                          elem_id="tr-restart")
                with gr.Row():
                    save = gr.Button("Save checkpoint", elem_id="tr-save")
                    evaluate = gr.Button("Validate now", elem_id="tr-eval")
                    stop = gr.Button("Save and stop", variant="stop", elem_id="tr-stop")
                status = gr.Markdown(elem_id="tr-status")
                plot = gr.Image(label="Loss", type="filepath", interactive=False, elem_id="tr-plot")
        with gr.Row():
            voice = gr.Dropdown(choices=voice_choices(), label="Voice", elem_id="tr-voice")
            checkpoint = gr.Dropdown(choices=["latest", "best"], value="latest", label="Checkpoint",
                                     elem_id="tr-checkpoint")
            use = gr.Button("Speak with this run", elem_id="tr-use")
            stock = gr.Button("Back to stock weights", elem_id="tr-stock")
        use_status = gr.Markdown(elem_id="tr-use-status")
        table = gr.Dataframe(value=_runs_table(training), headers=RUN_HEADERS, label="Runs", interactive=False,
                             elem_id="tr-table")
        timer = gr.Timer(POLL_SECONDS)

    @friendly
    def create_run(name_value, dataset_value, engine_value, epochs_value, lora_value, weights_value,
                   settings_value=""):
        name_value = (name_value or "").strip()
        if not name_value or not dataset_value:
            raise VoxmithError("Give the run a name and pick a dataset.")
        changes = {"lora": {"enabled": bool(lora_value)}}
        items = [item for item in (weights_value or "").replace(",", " ").split() if item]
        if items:
            changes["losses"] = {"weights": parse_assignments(items, training.loss_terms(engine_value), engine_value)}
        settings = split_assignments([i for i in (settings_value or "").splitlines() if i.strip()], "Engine setting")
        created = training.init(name_value, dataset_value, engine_value,
                                int(epochs_value) if epochs_value else None, changes, settings=settings)
        s = created.load_config().schedule
        # the run's one spelling: the name as typed (NFD, pasted from Finder) is not among the
        # choices (NFC), and Gradio refused the value on every poll after
        text = (f"Created **{created.name}**: {s.epochs} epochs, batch {s.batch_size} x {s.grad_accumulation}, "
                f"lr {s.learning_rate:g}. Settings in `{created.config_path}`")
        return text, gr.update(choices=training.names(), value=created.name), _runs_table(training)

    def describe(run_value, summary=None):
        """Status line, loss plot and checkpoint choices of the selected run."""
        if not run_value:
            return "Pick or create a run.", None, gr.update()
        job = jobs.get(run_value)
        summary = summary or training.summary(run_value)
        line = job.state().text if job else f"{run_value}: not running"
        best = f"; best validation loss {summary.best.val_loss:.4g} at step {summary.best.step}" if summary.best else ""
        text = f"**{line}**  \n{summary.progress_text}{best}"
        plot_path = next((str(p) for p in summary.plots if p.name == "loss.png"), None)
        return text, plot_path, gr.update(choices=_checkpoint_choices(summary))

    @friendly
    def start_run(run_value, restart_value):
        if not run_value:
            raise VoxmithError("Pick a run first.")
        jobs.start(run_value, force_restart=bool(restart_value))
        return describe(run_value)[0], gr.update(value=False)

    def commander(word):
        @friendly
        def send(run_value):
            job = jobs.get(run_value) if run_value else None
            if job is None or not job.is_running():
                raise VoxmithError("That run is not training right now.")
            job.send(word)
            return f"Sent **{word}**; it happens after the current step."
        return send

    def poll(run_value):
        summaries = training.summaries()  # read once per tick for both the status and the table
        current = next((s for s in summaries if not isinstance(s, tuple) and s.name == run_value), None)
        try:
            text, plot_path, choices = describe(run_value, current)
        except VoxmithError as err:  # the picked run cannot be read (now): said, and the table still polled
            text, plot_path, choices = str(err), None, gr.update()
        return text, plot_path, choices, _runs_table(training, summaries)

    @friendly
    def use_run(voice_value, run_value, checkpoint_value, progress=gr.Progress()):
        if not voice_value or not run_value:
            raise VoxmithError("Pick a voice and a run.")
        # piper-vc weights are checked on the voice first (its intelligibility guard; refused ones
        # leave the voice as it was), which takes a while: hence the progress.
        choice = training.use(voice_value, run_value, checkpoint_value or "latest", progress=to_gradio(progress))
        check = choice.get("check")
        reduced = (" The intelligibility check reduced: " + "; ".join(check["reduced"]) + "."
                   if check and check["reduced"] else "")
        return (f"Voice **{voice_value}** now speaks with run **{run_value}** ({checkpoint_value}: step "
                f"{choice['step']}) when the {choice['engine']} engine is used.{reduced}")

    @friendly
    def use_stock(voice_value):
        if not voice_value:
            raise VoxmithError("Pick a voice.")
        training.use(voice_value, None)
        return f"Voice **{voice_value}** speaks with the stock weights again."

    tab.select(lambda: (gr.update(choices=studio.datasets.names()), gr.update(choices=training.names()),
                        gr.update(choices=voice_choices()), _runs_table(training)),
               None, [dataset, run, voice, table])
    create.click(create_run, [name, dataset, engine, epochs, lora, weights, engine_settings],
                 [create_status, run, table])
    engine.change(lambda value: gr.update(value="", placeholder=_weights_hint(training, value)), engine, weights)
    run.change(friendly(describe), run, [status, plot, checkpoint])
    start.click(start_run, [run, restart], [status, restart])
    save.click(commander("save"), run, status)
    evaluate.click(commander("eval"), run, status)
    stop.click(commander("quit"), run, status)
    timer.tick(friendly(poll), run, [status, plot, checkpoint, table])
    use.click(use_run, [voice, run, checkpoint], use_status)
    stock.click(use_stock, voice, use_status)
    return voice
