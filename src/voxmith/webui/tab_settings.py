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
    for entry in studio.model_files():  # each engine declares its files; none is named here
        if entry.error:
            lines.append(f"- {entry.engine}: unavailable ({entry.error})")
            continue
        missing = len(entry.missing_required)
        state = f"{missing} needed file(s) missing" if missing else "all needed files present"
        if missing and entry.downloadable:
            state += f" (`voxmith models download {entry.engine}`)"
        lines.append(f"- {entry.engine}: {state}")
        for f in entry.files:
            where = f"`{f.path}` ({f.found_by})" if f.path else "missing" if f.required else "missing (optional)"
            lines.append(f"    - `{f.name}`: {where}")
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
