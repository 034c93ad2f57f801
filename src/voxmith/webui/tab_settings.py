"""Settings tab: where things are and what the studio runs on."""

from __future__ import annotations

import gradio as gr

from voxmith.engines import available_engines, engine_class
from voxmith.engines.device import describe_torch
from voxmith.engines.registry import DEFAULT_ENGINE
from voxmith.errors import VoxmithError


def _engines_table():
    rows = []
    for name in available_engines():
        try:
            cls = engine_class(name)
            rows.append([name, cls.version, "GPU recommended" if cls.device_needs.gpu_recommended else "CPU",
                         cls.device_needs.note or cls.description])
        except VoxmithError as err:
            rows.append([name, "-", "unavailable", str(err)])
    return rows


def _models_text(studio):
    from voxmith.asr.whisper import resolve_model

    lines = [f"- Workspace models folder: `{studio.workspace.models_dir}`"]
    try:
        lines.append(f"- Whisper (ranking and datasets): bundled base model at `{resolve_model(None)}`")
    except VoxmithError as err:
        lines.append(f"- Whisper: {err}")
    try:
        from voxmith.engines.piper_vc.base_voice import voice_files

        model, _ = voice_files()
        lines.append(f"- Piper base voice (piper-vc): `{model}`")
    except Exception as err:  # an engine's optional files: report, do not fail the page
        lines.append(f"- Piper base voice: unavailable ({err})")
    return "\n".join(lines)


def build(studio):
    with gr.Tab("Settings", id="settings"):
        gr.Markdown(
            f"### Workspace\n`{studio.workspace.home}` (voices, datasets, training, results, models). "
            "Start the studio with `--home DIR` or set `VOXMITH_HOME` to use another.\n\n"
            f"### Device\n**{studio.device}** (requested: {studio.device_request}); {describe_torch()}\n\n"
            f"### Default engine\n**{DEFAULT_ENGINE}**", elem_id="settings-info")
        gr.Dataframe(value=_engines_table(), headers=["engine", "version", "hardware", "notes"],
                     label="Engines", interactive=False)
        gr.Markdown("### Models and download status\n" + _models_text(studio))
