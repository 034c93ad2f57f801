"""Who is the main speaker of a set of segments, and how far is each segment from them?

A plain mean of all embeddings is pulled toward a second speaker in proportion to their share of
the recording, which hides them. Here the center is re-estimated from the half of the segments
closest to it, a few times, so it settles on the majority speaker (as long as they have most of
the segments).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

REFINE_ROUNDS = 3


def main_speaker_center(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """Unit-length center of the majority speaker's embeddings."""
    stacked = np.stack([np.asarray(e, dtype=np.float64) for e in embeddings])
    stacked /= np.maximum(np.linalg.norm(stacked, axis=1, keepdims=True), 1e-12)
    center = stacked.mean(axis=0)
    for _ in range(REFINE_ROUNDS):
        center /= max(np.linalg.norm(center), 1e-12)
        similarity = stacked @ center
        closest = similarity >= np.median(similarity)
        center = stacked[closest].mean(axis=0)
    return (center / max(np.linalg.norm(center), 1e-12)).astype(np.float32)


def similarities_to_main_speaker(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """Cosine similarity of each embedding to `main_speaker_center` of them all."""
    center = main_speaker_center(embeddings).astype(np.float64)
    stacked = np.stack([np.asarray(e, dtype=np.float64) for e in embeddings])
    return stacked @ center / np.maximum(np.linalg.norm(stacked, axis=1), 1e-12)
