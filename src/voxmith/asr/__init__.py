"""Speech recognition (faster-whisper) used to rank takes, transcribe clips and build datasets."""

from voxmith.asr.whisper import Segment, Transcript, Transcriber, get_transcriber, resolve_model

__all__ = ["Segment", "Transcript", "Transcriber", "get_transcriber", "resolve_model"]
