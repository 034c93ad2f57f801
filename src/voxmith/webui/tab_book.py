"""Book tab: read a text, Markdown or EPUB book in a voice; progress, chapters, every sentence with
its status, play a sentence and make it again (`Studio.book`)."""

from __future__ import annotations

import gradio as gr
import numpy as np

from voxmith.engines import available_engines
from voxmith.engines.registry import DEFAULT_ENGINE
from voxmith.errors import VoxmithError
from voxmith.studio.book import BookFolderTaken, BookRequest, load_book
from voxmith.studio.ranking import RankingSettings
from voxmith.studio.record import FinetuneChoice
from voxmith.text.book import PauseSettings
from voxmith.webui.forms import number, uploaded_path
from voxmith.webui.progress import friendly, to_gradio

VOICE_WEIGHTS, STOCK_WEIGHTS = "voice", "stock"  # the weights choices' values; a run's is "run:WHICH:NAME"
CHAPTER_HEADERS = ["chapter", "title", "minutes", "sentences", "to review"]
SENTENCE_HEADERS = ["id", "status", "WER", "similarity", "text"]


def _tables(result):
    book = result.record
    chapters = [[c.number, c.title, round((c.end_s - c.start_s) / 60, 2), c.sentences,
                 sum(s.chapter == c.number and s.status == "review" for s in book.sentences)]
                for c in book.chapters]
    sentences = [[s.id, s.status, (s.scores or {}).get("wer"), (s.scores or {}).get("similarity"), s.text]
                 for s in book.sentences]
    return chapters, sentences


def weights_choices(studio) -> list:
    """(label, value) for the Weights dropdown: the voice's setting (`voices use`), the stock weights,
    and each training run's latest and best checkpoints."""
    try:
        runs = studio.training.names()
    except OSError:  # no runs folder yet
        runs = []
    return [("the voice's setting (Training tab: Speak with this run)", VOICE_WEIGHTS), ("the stock weights", STOCK_WEIGHTS),
            *((f"run {name}, {which} checkpoint", f"run:{which}:{name}") for name in runs for which in ("latest", "best"))]


def finetune_choice(value) -> FinetuneChoice:
    """The FinetuneChoice of a Weights dropdown value (see `weights_choices`)."""
    if not value or value == VOICE_WEIGHTS:
        return FinetuneChoice.voice_setting()
    if value == STOCK_WEIGHTS:
        return FinetuneChoice.stock()
    kind, _, rest = str(value).partition(":")
    which, _, name = rest.partition(":")
    if kind != "run" or not which or not name:  # (only a hand-made request sends another value)
        raise VoxmithError(f"Unknown weights choice '{value}': pick one of the Weights list.")
    return FinetuneChoice.of_run(name, which)


def _taken_message(err: BookFolderTaken) -> str:
    """A book folder started otherwise, said with the web UI's ways out (the CLI's is -o, a folder
    of one's choice; here the folder is named after the uploaded file)."""
    elsewhere = ("to read it anew, rename the file before uploading it (the folder is named after it) "
                 "or delete that folder.")
    if err.seed is not None:
        return (f"The book's folder `{err.folder}` was started with seed {err.seed}: set the seed to "
                f"{err.seed} or -1 to go on with it; {elsewhere}")
    if "book" in err.changed:  # another text under the same file name
        return (f"The book's folder `{err.folder}` holds another book of the same file name. To read this "
                "one, rename the file before uploading it (the folder is named after it), or delete that folder.")
    return (f"The book's folder `{err.folder}` holds this book read with other settings "
            f"({', '.join(err.changed)}): set them back to go on with it; {elsewhere}")


def _book(studio, request: BookRequest, **options):
    try:
        return studio.book(request, **options)
    except BookFolderTaken as err:
        raise VoxmithError(_taken_message(err)) from None


def _playable(result, sentence_id: str):
    """(rate, int16 samples) of a sentence for the player."""
    samples = np.clip(result.sentence_audio(sentence_id), -1.0, 1.0)
    return result.record.sample_rate_hz, (samples * 32767).astype(np.int16)


def build(studio, voice_choices):
    with gr.Tab("Book", id="book") as tab:
        with gr.Row():
            with gr.Column(scale=3):
                book_file = gr.File(label="Book (.txt, .md, .epub)", file_types=[".txt", ".md", ".epub"],
                                    elem_id="book-file")
                with gr.Row():
                    voice = gr.Dropdown(choices=voice_choices(), label="Voice", elem_id="book-voice")
                    engine = gr.Dropdown(choices=available_engines(), value=DEFAULT_ENGINE, label="Engine",
                                         elem_id="book-engine")
                    seed = gr.Number(value=-1, precision=0, label="Seed (-1: random, kept by the book)")
                    rank = gr.Checkbox(value=True, label="Rank takes (Whisper) and flag sentences for review")
                    weights = gr.Dropdown(choices=weights_choices(studio), value=VOICE_WEIGHTS, label="Weights",
                                          elem_id="book-weights")
                with gr.Row():
                    sentence_pause = gr.Number(value=0.35, label="Sentence pause (s)")
                    paragraph_pause = gr.Number(value=0.8, label="Paragraph pause (s)")
                    chapter_pause = gr.Number(value=2.0, label="Chapter pause (s)")
                go = gr.Button("Read the book (resumes an unfinished one)", variant="primary", elem_id="book-go")
            with gr.Column(scale=2):
                download = gr.File(label="The book (M4B with chapters)", interactive=False, elem_id="book-output")
                summary = gr.Markdown(elem_id="book-summary")
        chapters = gr.Dataframe(headers=CHAPTER_HEADERS, label="Chapters", interactive=False, elem_id="book-chapters")
        sentences = gr.Dataframe(headers=SENTENCE_HEADERS, label="Sentences (click one to play it)",
                                 interactive=False, elem_id="book-sentences")
        with gr.Row():
            player = gr.Audio(label="Sentence", interactive=False, elem_id="book-player")
            chosen = gr.Textbox(label="Sentence id", interactive=False, elem_id="book-chosen")
            redo = gr.Button("Make this sentence again", elem_id="book-redo")

    def request(path, voice_value, engine_value, seed_value, rank_value, weights_value, s_pause, p_pause, c_pause):
        if not path:
            raise VoxmithError("Upload a book first (.txt, .md or .epub).")
        if not voice_value:
            raise VoxmithError("Pick a voice first (create one in the Voices tab).")
        defaults = PauseSettings()
        pauses = PauseSettings(number(s_pause, "Sentence pause (s)", defaults.sentence_pause_s),
                               number(p_pause, "Paragraph pause (s)", defaults.paragraph_pause_s),
                               number(c_pause, "Chapter pause (s)", defaults.chapter_pause_s))
        return BookRequest(source=uploaded_path(path), voice=voice_value, engine=engine_value,
                           seed=None if seed_value is None or int(seed_value) < 0 else int(seed_value),
                           rank=bool(rank_value), ranking=RankingSettings(), pauses=pauses,
                           finetune=finetune_choice(weights_value))

    def shown(result):
        chapter_rows, sentence_rows = _tables(result)
        review = result.review
        note = (f"**{len(chapter_rows)} chapter(s)**, {len(sentence_rows)} sentences, "
                f"{result.record.duration_s / 60:.1f} min. Folder `{result.folder}`."
                + (f"\n\n{len(review)} sentence(s) to review: {', '.join(review)}" if review else ""))
        return str(result.book_path), note, chapter_rows, sentence_rows

    inputs = [book_file, voice, engine, seed, rank, weights, sentence_pause, paragraph_pause, chapter_pause]

    @friendly
    def read(*values, progress=gr.Progress()):
        return shown(_book(studio, request(*values), progress=to_gradio(progress)))

    @friendly
    def redo_one(sentence_id, *values, progress=gr.Progress()):
        if not sentence_id:
            raise VoxmithError("Click a sentence first.")
        result = _book(studio, request(*values), redo=sentence_id, progress=to_gradio(progress))
        return (*shown(result), _playable(result, sentence_id))

    def select(event: gr.SelectData, *values):
        try:
            result = load_book(studio.book_folder(request(*values)))
        except VoxmithError:
            result = None
        if result is None or event.index[0] >= len(result.record.sentences):
            return gr.update(), gr.update()
        sentence_id = result.record.sentences[event.index[0]].id
        return sentence_id, _playable(result, sentence_id)

    go.click(read, inputs, [download, summary, chapters, sentences])
    redo.click(redo_one, [chosen, *inputs], [download, summary, chapters, sentences, player])
    sentences.select(select, inputs, [chosen, player])
    tab.select(lambda: (gr.update(choices=voice_choices()), gr.update(choices=available_engines()),
                        gr.update(choices=weights_choices(studio))), None, [voice, engine, weights])
    return voice

