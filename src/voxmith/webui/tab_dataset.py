"""Dataset tab: prepare a dataset from voices or uploaded recordings with live progress; a table
of segments where each row can be played, its transcript edited, or dropped."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from voxmith.datasets import PrepareSettings
from voxmith.errors import VoxmithError
from voxmith.webui.forms import number, uploaded_paths
from voxmith.webui.progress import friendly, to_gradio

SEGMENT_HEADERS = ["id", "duration s", "split", "transcript", "flags"]


def _segments(studio, name):
    if not name:
        return [[""] * len(SEGMENT_HEADERS)]
    record = studio.datasets.get(name).load()
    return [[s["id"], s["duration_s"], "dropped" if s.get("dropped") else (s.get("split") or "-"),
             s.get("transcript") or "", "; ".join(s.get("flags", []))] for s in record["segments"]]


def _summary_text(summary):
    return (f"**{summary['name']}**: {summary['usable']} usable segments ({summary['train']} train, "
            f"{summary['validation']} validation), {summary['total_duration_s'] / 60:.1f} min. {summary['note']}")


def build(studio, voice_choices):
    with gr.Tab("Dataset", id="dataset") as tab:
        with gr.Row():
            with gr.Column():
                name = gr.Textbox(label="Dataset name", elem_id="ds-name")
                from_voices = gr.Dropdown(choices=voice_choices(), multiselect=True, label="From voices",
                                          elem_id="ds-voices")
                uploads = gr.File(label="...and/or recordings", file_count="multiple", elem_id="ds-files")
                with gr.Row():
                    language = gr.Textbox(value="en", label="Language (Whisper code or auto)")
                    min_s = gr.Number(value=2.0, label="Min seconds")
                    max_s = gr.Number(value=12.0, label="Max seconds")
                prepare = gr.Button("Prepare dataset", variant="primary", elem_id="ds-prepare")
                status = gr.Markdown(elem_id="ds-status")
            with gr.Column():
                chosen = gr.Dropdown(choices=studio.datasets.names(), label="Dataset", elem_id="ds-select")
                segment_audio = gr.Audio(label="Segment", type="filepath", interactive=False, elem_id="ds-audio")
                segment_id = gr.Textbox(label="Segment id", interactive=False, elem_id="ds-segment")
                transcript = gr.Textbox(label="Transcript", lines=2, elem_id="ds-transcript")
                with gr.Row():
                    save = gr.Button("Save transcript", elem_id="ds-save")
                    drop = gr.Button("Drop segment", variant="stop", elem_id="ds-drop")
                    restore = gr.Button("Restore", elem_id="ds-restore")
        table = gr.Dataframe(headers=SEGMENT_HEADERS, label="Segments (click a row)", interactive=False,
                             elem_id="ds-table", wrap=True, column_widths=["13%", "9%", "9%", "49%", "20%"])

    @friendly
    def run_prepare(name_value, voices_value, uploaded, language_value, min_value, max_value,
                    progress=gr.Progress()):
        sources = list(voices_value or []) + [str(p) for p in uploaded_paths(uploaded)]
        if not sources:  # (the library's refusal names the CLI's --from)
            raise VoxmithError("Pick voices or upload recordings to make the dataset from.")
        defaults = PrepareSettings()
        settings = PrepareSettings(language=(language_value or "en").strip(),
                                   min_seconds=number(min_value, "Min seconds", defaults.min_seconds),
                                   max_seconds=number(max_value, "Max seconds", defaults.max_seconds))
        summary = studio.prepare_dataset((name_value or "").strip(), sources, settings,
                                         progress=to_gradio(progress))
        return (_summary_text(summary), gr.update(choices=studio.datasets.names(), value=summary["name"]),
                _segments(studio, summary["name"]))

    @friendly
    def refresh(current):
        """Voices and datasets made elsewhere (another tab, the CLI) appear, and the dataset shown in
        the dropdown (the first one when nothing was picked yet) has its segments loaded."""
        names = studio.datasets.names()
        current = current if current in names else (names[0] if names else None)
        return gr.update(choices=voice_choices()), gr.update(choices=names, value=current), _segments(studio, current)

    tab.select(refresh, chosen, [from_voices, chosen, table])
    prepare.click(run_prepare, [name, from_voices, uploads, language, min_s, max_s], [status, chosen, table])
    chosen.change(friendly(lambda n: _segments(studio, n)), chosen, table)

    def pick(name_value, event: gr.SelectData):
        if not name_value:  # the empty table's placeholder row, before any dataset exists
            return None, "", ""
        dataset = studio.datasets.get(name_value)
        record = dataset.load()
        if event.index[0] >= len(record["segments"]):
            return None, "", ""
        segment = record["segments"][event.index[0]]
        return str(Path(dataset.path) / segment["file"]), segment["id"], segment.get("transcript") or ""

    table.select(friendly(pick), chosen, [segment_audio, segment_id, transcript])

    def editor(**change):
        @friendly
        def apply(name_value, segment_value, text_value):
            if not name_value or not segment_value:
                raise VoxmithError("Click a segment in the table first.")
            dataset = studio.datasets.get(name_value)
            entry = dataset.edit(segment_value, text=text_value if change.get("text") else None,
                                 drop=change.get("drop", False), restore=change.get("restore", False))
            state = "dropped" if entry.get("dropped") else "saved"
            return f"{entry['id']} {state}.", _segments(studio, name_value)
        return apply

    save.click(editor(text=True), [chosen, segment_id, transcript], [status, table])
    drop.click(editor(drop=True), [chosen, segment_id, transcript], [status, table])
    restore.click(editor(restore=True), [chosen, segment_id, transcript], [status, table])
    on_load = (refresh, chosen, [from_voices, chosen, table])  # wired to the page's load by the app
    return from_voices, chosen, on_load
