"""Generate tab: text, voice, engine, candidates, seed and engine settings in; ranked takes out;
a history of past results that can be replayed and re-run with the same settings."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import gradio as gr

from voxmith.audio import load_audio, save_audio

from voxmith.engines import available_engines, engine_class
from voxmith.engines.registry import DEFAULT_ENGINE
from voxmith.errors import VoxmithError
from voxmith.studio.results import list_results
from voxmith.studio.speech import MAX_SPEAK_TEXT_CHARS, SpeakRequest
from voxmith.webui.forms import number, settings_object
from voxmith.webui.progress import friendly, in_page_words, to_gradio

MAX_TAKES_SHOWN = 8
DOWNLOAD_FORMATS = ("wav", "flac", "mp3", "opus", "aac")
HISTORY_HEADERS = ["created", "voice", "engine", "seed", "takes", "duration s", "text", "file"]


def default_settings_json(engine: str) -> str:
    try:
        return json.dumps(engine_class(engine).settings_class().to_dict(), indent=2)
    except VoxmithError as err:
        return json.dumps({"error": str(err)})


def _history_rows(studio):
    rows = []
    for entry in list_results(studio.workspace.results_dir):
        r = entry.record
        rows.append([r.created, entry.voice, r.engine_name, r.seed, entry.takes, r.duration_s, r.text[:80],
                     str(entry.audio_path)])
    return rows or [[""] * len(HISTORY_HEADERS)]


def _takes_table(result):
    rows = []
    for i, sentence in enumerate(result.record.sentences, 1):
        for k, take in enumerate(sentence.takes, 1):
            scores = take.scores or {}
            rows.append([i, k, "yes" if k - 1 == sentence.chosen_take else "",
                         scores.get("similarity"), scores.get("wer"), scores.get("transcript", ""), take.seed])
    return rows


def check_text_length(text: str) -> None:
    """Refuse a text longer than one request takes, pointing at the Book tab, which reads a long
    text chapter by chapter and resumes where it stopped."""
    if len(text) > MAX_SPEAK_TEXT_CHARS:
        raise VoxmithError(f"The text is {len(text):,} characters long; Generate takes up to "
                           f"{MAX_SPEAK_TEXT_CHARS:,} at a time. Read a longer text in the Book tab: save it as a "
                           ".txt or .md file and upload it there (it is read chapter by chapter, and an "
                           "interrupted book resumes where it stopped).")


def download_as(result_path: Optional[str], fmt: str) -> Optional[str]:
    """The result as a `fmt` file to download: the WAV itself, or an encoded copy (in-process, PyAV)
    in the web UI's private temporary folder (swept like its uploads), so the workspace keeps one
    file per result."""
    if not result_path:
        return None
    if fmt == "wav":
        return result_path
    audio = load_audio(result_path)
    target = Path(tempfile.mkdtemp(prefix="download-", dir=os.environ.get("GRADIO_TEMP_DIR"))) / f"{Path(result_path).stem}.{fmt}"
    return str(save_audio(target, audio.samples, audio.sample_rate_hz))


def build(studio, voice_choices):
    with gr.Tab("Generate", id="generate") as tab:
        with gr.Row():
            with gr.Column(scale=3):
                text = gr.Textbox(label="Text", lines=5, elem_id="gen-text",
                                  placeholder="Type what the voice should say. Long text is split into sentences "
                                              f"(up to {MAX_SPEAK_TEXT_CHARS:,} characters; a book: the Book tab).")
                with gr.Row():
                    voice = gr.Dropdown(choices=voice_choices(), label="Voice", elem_id="gen-voice", scale=3)
                    refresh = gr.Button("↻ voices", scale=1, size="sm", elem_id="gen-refresh")
                with gr.Row():
                    engine = gr.Dropdown(choices=available_engines(), value=DEFAULT_ENGINE, label="Engine")
                    candidates = gr.Slider(1, MAX_TAKES_SHOWN, value=1, step=1, label="Candidates per sentence",
                                           elem_id="gen-candidates")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1: random)")
                with gr.Accordion("Advanced engine settings (JSON)", open=False):
                    settings = gr.Code(value=default_settings_json(DEFAULT_ENGINE), language="json",
                                       label="Settings")
                    rank = gr.Checkbox(value=True, label="Rank takes (speaker similarity + Whisper) and "
                                                          "re-generate takes that miss words")
                go = gr.Button("Generate", variant="primary", elem_id="gen-go")
            with gr.Column(scale=2):
                output = gr.Audio(label="Result", type="filepath", interactive=False, elem_id="gen-output")
                download_format = gr.Dropdown(choices=list(DOWNLOAD_FORMATS), value="wav", label="Download as",
                                              elem_id="gen-download-format")
                download = gr.File(label="Download", interactive=False)
                summary = gr.Markdown(elem_id="gen-summary")
        takes = gr.Dataframe(headers=["sentence", "take", "chosen", "similarity", "WER", "transcript", "seed"],
                             label="Takes, ranked", interactive=False)
        with gr.Row():
            take_players = [gr.Audio(label=f"take {i + 1}", type="filepath", visible=False, interactive=False)
                            for i in range(MAX_TAKES_SHOWN)]
        with gr.Accordion("History", open=False):
            history = gr.Dataframe(headers=HISTORY_HEADERS, value=lambda: _history_rows(studio),
                                   interactive=False, label="Past results (click a row to load it)")
            with gr.Row():
                replay = gr.Audio(label="Selected result", type="filepath", interactive=False)
                rerun = gr.Button("Re-run with these settings")
            selected_sidecar = gr.State(None)

    @friendly
    def generate(text_value, voice_value, engine_value, n, seed_value, settings_json, rank_value,
                 progress=gr.Progress()):
        check_text_length(text_value or "")
        if not voice_value:
            raise VoxmithError("Pick a voice first (create one in the Voices tab).")
        settings_dict = settings_object(settings_json, "advanced settings")
        request = SpeakRequest(text=text_value or "", voice=voice_value, engine=engine_value,
                               settings=settings_dict, candidates=int(number(n, "Candidates per sentence", 1)),
                               seed=None if seed_value is None or int(seed_value) < 0 else int(seed_value),
                               rank=bool(rank_value))
        result = studio.speak(request, progress=to_gradio(progress))
        record = result.record
        take_files = [result.path.parent / t.file for s in record.sentences for t in s.takes
                      if t.file][:MAX_TAKES_SHOWN]
        players = [gr.update(value=str(f), visible=True, label=f.stem) for f in take_files]
        players += [gr.update(value=None, visible=False)] * (MAX_TAKES_SHOWN - len(players))
        note = (f"**{result.duration_s:.1f} s** of speech in {record.total_s:.1f} s, seed {record.seed}. "
                f"Saved to `{result.path}`." + "".join(f"\n\n⚠ {in_page_words(w)}" for w in result.warnings))
        return [str(result.path), str(result.path), note, _takes_table(result), _history_rows(studio), *players]

    go.click(generate, [text, voice, engine, candidates, seed, settings, rank],
             [output, download, summary, takes, history, *take_players])
    refresh.click(lambda: gr.update(choices=voice_choices()), None, voice)
    tab.select(lambda: (gr.update(choices=voice_choices()), _history_rows(studio)), None, [voice, history])
    engine.input(default_settings_json, engine, settings)  # only when the user picks one (not when history loads it)

    @friendly
    def select_history(event: gr.SelectData):
        """Load the request that made the clicked result into the form (the same request `reproduce`
        and "Re-run with these settings" speak), so Generate with it makes the same audio."""
        rows = list_results(studio.workspace.results_dir)
        if event.index[0] >= len(rows):
            return None, None, *[gr.update()] * 7
        entry = rows[event.index[0]]
        request = studio.reproduction_request(entry.sidecar_path)
        return (str(entry.audio_path), str(entry.sidecar_path), request.text, request.voice, request.engine,
                request.candidates, request.seed, json.dumps(request.settings, indent=2), request.rank)

    history.select(select_history, None,
                   [replay, selected_sidecar, text, voice, engine, candidates, seed, settings, rank])

    @friendly
    def rerun_selected(sidecar_path, progress=gr.Progress()):
        if not sidecar_path:
            raise VoxmithError("Click a row of the history first.")
        result = studio.reproduce(sidecar_path, progress=to_gradio(progress))
        return str(result.path), str(result.path), f"Re-made `{result.path}` from `{sidecar_path}`.", \
            _takes_table(result), _history_rows(studio)

    rerun.click(rerun_selected, selected_sidecar, [output, download, summary, takes, history])
    for trigger in (output.change, download_format.change):
        trigger(friendly(download_as), [output, download_format], download)
    return voice
