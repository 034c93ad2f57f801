"""Convert tab: upload a recording of anyone, pick a voice, get the same speech in that voice."""

from __future__ import annotations

import gradio as gr

from voxmith.errors import VoxmithError
from voxmith.studio.conversion import ConvertRequest
from voxmith.webui.forms import settings_object, uploaded_path
from voxmith.webui.progress import friendly, to_gradio

ENGINE = "piper-vc"  # the engine that can convert today (Engine.supports_convert)


def build(studio, voice_choices):
    with gr.Tab("Convert", id="convert") as tab:
        with gr.Row():
            with gr.Column(scale=3):
                recording = gr.Audio(label="Recording to convert (anyone speaking)", type="filepath",
                                     sources=["upload", "microphone"], elem_id="conv-input")
                voice = gr.Dropdown(choices=voice_choices(), label="Into the voice", elem_id="conv-voice")
                with gr.Accordion("Conversion settings (JSON)", open=False):
                    settings = gr.Code(value="{}", language="json",
                                       label='Settings, e.g. {"f0_scale": 1.1} or {"warp": 0.1}')
                go = gr.Button("Convert", variant="primary", elem_id="conv-go")
            with gr.Column(scale=2):
                output = gr.Audio(label="Converted", type="filepath", interactive=False, elem_id="conv-output")
                summary = gr.Markdown()

    @friendly
    def convert(path, voice_value, settings_json, progress=gr.Progress()):
        if not path:
            raise VoxmithError("Upload or record the speech to convert first.")
        if not voice_value:
            raise VoxmithError("Pick a voice first (create one in the Voices tab).")
        values = settings_object(settings_json, "conversion settings")
        result = studio.convert(ConvertRequest(str(uploaded_path(path)), voice=voice_value, engine=ENGINE, settings=values),
                                progress=to_gradio(progress))
        record = result.record
        details = record.conversion  # the engine's own choices (piper-vc: warp and pitches)
        chosen = f"; warp {details['warp']:+.3f}, pitch {details.get('source_f0_hz')} Hz → " \
                 f"{details.get('target_f0_hz')} Hz" if "warp" in details else ""
        note = (f"**{result.duration_s:.1f} s** converted in {record.total_s:.1f} s{chosen}. "
                f"Saved to `{result.path}`.")
        return str(result.path), note

    go.click(convert, [recording, voice, settings], [output, summary])
    tab.select(lambda: gr.update(choices=voice_choices()), None, voice)
    return voice
