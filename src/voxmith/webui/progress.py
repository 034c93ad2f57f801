"""Core progress events -> Gradio's progress bar; `VoxmithError` -> a readable error in the page."""

from __future__ import annotations

import functools
import html
import logging
import os
import re

import gradio as gr

from voxmith.errors import VoxmithError
from voxmith.progress import Progress
from voxmith.torch_threads import process_threads

logger = logging.getLogger("voxmith.webui")


def to_gradio(progress: gr.Progress):
    def callback(event: Progress) -> None:
        if event.total:
            progress((event.done, event.total), desc=event.stage, unit=plural_unit(event.unit))
        else:
            progress(None, desc=f"{event.stage}: {event.detail}" if event.detail else event.stage)
    return callback


def plural_unit(unit: str) -> str:
    """Gradio shows "3/12 UNIT": "sentence" -> "sentences"; "audio s" (seconds of a recording) and no unit stay."""
    return unit + "s" if len(unit) > 1 and not unit.endswith("s") else unit


# The CLI options the library's messages name in parentheses after the words that say what they are
# ("The number of candidates (--candidates)"); in the page the words are enough. Only these are taken
# out: a file or voice the user named 'take (--final)' keeps its name.
OPTIONS_NAMED_IN_PARENTHESES = ("candidates", "seed", "retries", "stock", "token", "sentence-pause",
                                "paragraph-pause", "chapter-pause")

# The library's hints name CLI commands and options; in the page, the tab, box or button that does
# the same (or the CLI, said as such, when no tab does).
PAGE_HINTS = (
    (re.compile(r"Create it with `voxmith voices add [^`]*`\."), "Create it in the Voices tab."),
    (re.compile(r"Create it with `voxmith dataset prepare [^`]*`\."), "Prepare it in the Dataset tab."),
    (re.compile(r"Create one with `voxmith train init [^`]*`\."), "Create one in the Training tab."),
    (re.compile(r"Pass --redo to rebuild it \(edited transcripts are lost\), or choose another name\."),
     "Choose another name (rebuilding it, which loses edited transcripts, is `voxmith dataset prepare "
     "NAME --redo` on the command line)."),
    (re.compile(r"with `voxmith dataset prepare NAME --from FILE`\."), "in the Dataset tab."),
    (re.compile(r": --engine (\S+), or engine/model '\1' over HTTP\."), ": pick it in the Engine list."),
    # Options the page shows as boxes and buttons of its own names.
    (re.compile(r"--min-seconds"), "'Min seconds'"),
    (re.compile(r"--max-seconds"), "'Max seconds'"),
    (re.compile(r"use --drop to remove"), "use 'Drop segment' to remove"),
    (re.compile(r" \(--(?:" + "|".join(map(re.escape, OPTIONS_NAMED_IN_PARENTHESES)) + r")\)"), ""),
)


def user_message(err: Exception) -> str:
    """The error as the page shows it (`in_page_words`), escaped: Gradio renders error messages as
    HTML, and file names are user input."""
    return html.escape(in_page_words(str(err)))


def in_page_words(message: str) -> str:
    """A message of the library (an error, a warning) as the page says it: uploads named as the user
    named them, not by their temporary path, and hints as the page's tabs. Not escaped."""
    for pattern, hint in PAGE_HINTS:
        message = pattern.sub(hint, message)
    folder = os.environ.get("GRADIO_TEMP_DIR")
    if folder:
        for prefix in {folder.rstrip("/"), os.path.realpath(folder)}:
            # Gradio keeps each upload as <temp folder>/<content hash>/<the user's file name>.
            message = re.sub(re.escape(prefix) + r"/[^/\s]+/", "", message)
    return message


def friendly(handler):
    """Show user errors as messages in the page instead of a generic 'Error'; the server console
    gets one line per error, not a traceback (these are the user's mistakes, not bugs). Anything
    else is a bug: its traceback goes to the console, and the page gets its type and message with
    upload paths made the user's file names (Gradio, started with show_error, would show the bare
    message, temporary paths and all)."""
    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        name = getattr(handler, "__name__", "request")
        try:
            with process_threads():  # Gradio's worker threads copy the count when they start
                return handler(*args, **kwargs)
        except VoxmithError as err:
            message = user_message(err)
            logger.warning("%s: %s", name, html.unescape(message).splitlines()[0])
            raise gr.Error(message, duration=None, print_exception=False) from None
        except gr.Error:
            raise
        except Exception as err:
            logger.exception("%s failed", name)
            raise gr.Error(f"Unexpected {type(err).__name__}: {user_message(err)}. This is a bug in voxmith, "
                           "not something you did; the studio's console has the details.",
                           duration=None, print_exception=False) from None
    return wrapper
