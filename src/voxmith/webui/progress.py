"""Core progress events -> Gradio's progress bar; `VoxmithError` -> a readable error in the page."""

from __future__ import annotations

import functools

import gradio as gr

from voxmith.errors import VoxmithError
from voxmith.progress import Progress


def to_gradio(progress: gr.Progress):
    def callback(event: Progress) -> None:
        if event.total:
            progress((event.done, event.total), desc=event.stage, unit="")
        else:
            progress(None, desc=f"{event.stage}: {event.detail}" if event.detail else event.stage)
    return callback


def friendly(handler):
    """Show user errors as messages in the page instead of a generic 'Error'."""
    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except VoxmithError as err:
            raise gr.Error(str(err), duration=None) from None
    return wrapper
