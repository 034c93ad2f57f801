"""Voices tab: upload clips to create or extend a voice; per-clip analysis, clip-to-clip
similarity heat map and a map of all voices."""

from __future__ import annotations

import gradio as gr

from voxmith.errors import VoxmithError
from voxmith.studio.voice_map import voice_map
from voxmith.webui import plots
from voxmith.webui.forms import uploaded_paths
from voxmith.webui.progress import friendly, to_gradio

CLIP_HEADERS = ["clip", "duration s", "rate", "ch", "LUFS", "peak dBFS", "SNR dB", "speech", "consistency", "flags"]


def _analysis(studio, name, progress):
    report = studio.analyse_voice(name, progress=to_gradio(progress))
    rows = [[c.file, round(c.stats.duration_s, 2), c.stats.sample_rate_hz, c.stats.channels,
             round(c.stats.loudness_lufs, 1), round(c.stats.peak_dbfs, 1), round(c.stats.snr_db),
             f"{c.stats.speech_ratio:.0%}", "-" if c.consistency is None else round(c.consistency, 3),
             "; ".join(c.flags)] for c in report.clips]
    advice = (f"**{report.name}**: {len(report.clips)} clip{'' if len(report.clips) == 1 else 's'}, {report.total_speech_s:.1f} s of speech.\n\n"
              + "\n".join(f"- {line}" for line in report.advice))
    heatmap = plots.similarity_heatmap(report.similarity_matrix, [c.file for c in report.clips])
    return rows, advice, heatmap, plots.voices_map(voice_map(studio.voices), highlight=name)


def save_voice(studio, name: str, paths, mode: str, confirmed: bool, progress=None):
    """The Save button: create, extend or (only once confirmed) replace a voice. Returns the voice
    and the note to show, which says where replaced clips went."""
    name = (name or "").strip()
    exists = studio.voices.exists(name)
    if exists and mode not in ("add clips", "replace"):  # the library's refusal names the CLI's flags
        count = len(studio.voices.get(name).clip_paths)
        raise VoxmithError(f"Voice '{name}' already exists ({count} clip(s)). Choose 'add clips' to add these "
                           "clips to it, or 'replace' to replace it.")
    replacing = mode == "replace" and exists
    if replacing and not confirmed:
        old = studio.voices.get(name)
        by_hand = len(old.hand_added_clips)
        raise VoxmithError(f"Voice '{name}' exists with {len(old.clip_paths)} clip(s)"
                           + (f" ({by_hand} added by hand)" if by_hand else "")
                           + ". Tick 'Yes, replace it' to replace them; they move to the workspace's trash.")
    voice = studio.voices.add(name, paths, append=mode == "add clips", force=mode == "replace",
                              progress=progress)
    note = f"Voice **{voice.name}** now has {len(voice.clip_paths)} clip(s)."
    if replacing:
        note += f" The clips it had before are in `{voice.metadata['replaced']['backup']}`."
    return voice, note


def build(studio, voice_choices):
    with gr.Tab("Voices", id="voices") as tab:
        with gr.Row():
            with gr.Column():
                name = gr.Textbox(label="Voice name", elem_id="voice-name", placeholder="e.g. alice")
                files = gr.File(label="Clips (WAV, FLAC, MP3, OGG...)", file_count="multiple",
                                elem_id="voice-files")
                mode = gr.Radio(["create", "add clips", "replace"], value="create", label="If the voice exists")
                confirm_replace = gr.Checkbox(value=False, elem_id="voice-confirm-replace",
                                              label="Yes, replace it (its clips move to the workspace's trash)")
                create = gr.Button("Save voice", variant="primary", elem_id="voice-save")
                status = gr.Markdown(elem_id="voice-status")
            with gr.Column():
                selected = gr.Dropdown(choices=voice_choices(), label="Analyse voice", elem_id="voice-select")
                analyse = gr.Button("Analyse", elem_id="voice-analyse")
                advice = gr.Markdown(elem_id="voice-advice")
        clips = gr.Dataframe(headers=CLIP_HEADERS, label="Clips", interactive=False, elem_id="voice-clips")
        with gr.Row():
            heatmap = gr.Plot(label="Clip similarity")
            voices_plot = gr.Plot(label="All voices")

    @friendly
    def save(name_value, uploaded, mode_value, confirmed, progress=gr.Progress()):
        if not uploaded:
            raise VoxmithError("Upload one or more clips first.")
        paths = uploaded_paths(uploaded)
        voice, note = save_voice(studio, name_value, paths, mode_value, confirmed, to_gradio(progress))
        return note, gr.update(choices=voice_choices(), value=voice.name), gr.update(value=False)

    create.click(save, [name, files, mode, confirm_replace], [status, selected, confirm_replace])
    tab.select(lambda: gr.update(choices=voice_choices()), None, selected)

    @friendly
    def run_analysis(name_value, progress=gr.Progress()):
        if not name_value:
            raise VoxmithError("Pick a voice to analyse.")
        return _analysis(studio, name_value, progress)

    analyse.click(run_analysis, selected, [clips, advice, heatmap, voices_plot])
    selected.change(run_analysis, selected, [clips, advice, heatmap, voices_plot])
    return selected
