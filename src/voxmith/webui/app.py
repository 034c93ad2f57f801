"""Assembles the web UI's tabs around one Studio."""

from __future__ import annotations

import gradio as gr

from voxmith.version import __version__
from voxmith.webui import tab_book, tab_convert, tab_dataset, tab_generate, tab_settings, tab_training, tab_voices


def build_app(studio, delete_cache=None) -> gr.Blocks:
    """`delete_cache`: Gradio's (every_s, older_than_s) sweep of uploaded and cached temp files."""
    voice_choices = studio.voices.names  # read from disk every time: new voices appear without restart
    with gr.Blocks(title="voxmith studio", delete_cache=delete_cache) as app:
        gr.Markdown(f"## voxmith studio <small>v{__version__} · workspace `{studio.workspace.home}`</small>")
        with gr.Tabs():
            generate_voice = tab_generate.build(studio, voice_choices)
            convert_voice = tab_convert.build(studio, voice_choices)
            book_voice = tab_book.build(studio, voice_choices)
            voices_select = tab_voices.build(studio, voice_choices)
            dataset_voices, _, dataset_on_load = tab_dataset.build(studio, voice_choices)
            training_voice = tab_training.build(studio, voice_choices)
            tab_settings.build(studio)
        # A second browser tab (or a CLI run) may have changed the workspace: refresh on load.
        app.load(lambda: [gr.update(choices=voice_choices())] * 6, None,
                 [generate_voice, convert_voice, book_voice, voices_select, dataset_voices, training_voice])
        app.load(*dataset_on_load)
    return app
