"""GE2E speaker embeddings from the pretrained encoder that the `resemblyzer` package ships.

The encoder sees 1.6 s windows; `embed` slides them over the *whole* clip (about 1.3 windows a
second) and averages, so long clips are used entirely, not just their first seconds.
Embeddings are L2-normalised 256-d vectors; the cosine of two of them is the usual speaker
similarity score (SECS).
"""

from __future__ import annotations

import functools
import warnings
from typing import Sequence

import numpy as np

from voxmith.audio.dsp import resample

ENCODER_ID = "resemblyzer-ge2e-1"  # bump when the embedding procedure changes (invalidates caches)
ENCODER_RATE_HZ = 16000
EMBEDDING_SIZE = 256
CHUNK_S = 60  # longer clips are embedded a minute at a time, keeping memory bounded


def _import_resemblyzer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its webrtcvad dependency imports pkg_resources
        import resemblyzer
    return resemblyzer


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def mean_embedding(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """The speaker embedding of several clips: the normalised mean of their embeddings."""
    mean = np.mean(np.stack(embeddings), axis=0)
    return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)


class SpeakerEncoder:
    """Wraps resemblyzer's `VoiceEncoder` with voxmith's audio conventions."""

    def __init__(self, device: str = "cpu"):
        resemblyzer = _import_resemblyzer()
        self._resemblyzer = resemblyzer
        self._encoder = resemblyzer.VoiceEncoder(device, verbose=False)
        self.device = device

    def embed(self, samples: np.ndarray, sample_rate_hz: int) -> np.ndarray:
        """Embedding of one mono clip, averaged over windows covering all of it."""
        wav16k = resample(np.asarray(samples, dtype=np.float32), sample_rate_hz, ENCODER_RATE_HZ)
        # resemblyzer's preprocessing levels the volume and removes long pauses (WebRTC VAD);
        # a clip whose speech it cannot find is embedded as it is rather than dropped. On silence it
        # takes the log of zero: numpy's floating-point warnings are silenced for this thread only
        # (warnings.catch_warnings swaps the process's filters, unsafe when threads embed at once).
        with np.errstate(all="ignore"):
            prepared = self._resemblyzer.preprocess_wav(wav16k, source_sr=ENCODER_RATE_HZ)
        if prepared.shape[0] < ENCODER_RATE_HZ // 2:
            prepared = wav16k
        prepared = prepared.astype(np.float32)
        chunk = CHUNK_S * ENCODER_RATE_HZ
        if prepared.shape[0] <= chunk:
            return self._encoder.embed_utterance(prepared).astype(np.float32)
        # A long clip: its windows in chunks (the encoder runs all windows of a call as one batch,
        # about 100 MB per minute), then their mean, as one call over the whole clip would take.
        partials = []
        for start in range(0, prepared.shape[0], chunk):
            piece = prepared[start:start + chunk]
            if piece.shape[0] >= ENCODER_RATE_HZ // 2:
                partials.append(self._encoder.embed_utterance(piece, return_partials=True)[1])
        mean = np.concatenate(partials).mean(axis=0)
        return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)

    def embed_many(self, clips: Sequence[tuple[np.ndarray, int]]) -> np.ndarray:
        return np.stack([self.embed(s, r) for s, r in clips]) if clips else np.zeros((0, EMBEDDING_SIZE), np.float32)


@functools.lru_cache(maxsize=4)
def get_speaker_encoder(device: str = "cpu") -> SpeakerEncoder:
    """One shared encoder per device (loading the module takes a few seconds)."""
    return SpeakerEncoder(device)
