"""A 2-D map of all voices' speaker embeddings (as the SV2TTS toolbox shows), so users see which
voices are close. A plain PCA projection: distances are approximate, neighbours are meaningful."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np

from voxmith.studio.voice_report import voice_embeddings
from voxmith.studio.voices import VoiceLibrary


@dataclass(frozen=True)
class VoicePoint:
    voice: str
    clip: str  # "" for the voice's mean embedding
    x: float
    y: float


def voice_map(library: VoiceLibrary) -> List[VoicePoint]:
    names, clips, vectors = [], [], []
    for voice in library.list():
        if not voice.clip_paths:
            continue
        clip_embeddings, speaker, _ = voice_embeddings(voice)
        for path, embedding in zip(voice.clip_paths, clip_embeddings):
            names.append(voice.name)
            clips.append(path.name)
            vectors.append(embedding)
        names.append(voice.name)
        clips.append("")
        vectors.append(speaker)
    if not vectors:
        return []
    matrix = np.stack(vectors).astype(np.float64)
    centered = matrix - matrix.mean(axis=0)
    if len(vectors) == 1:
        coords = np.zeros((1, 2))
    else:
        _, _, components = np.linalg.svd(centered, full_matrices=False)
        coords = centered @ components[:2].T
        if coords.shape[1] == 1:
            coords = np.hstack([coords, np.zeros_like(coords)])
    return [VoicePoint(n, c, float(x), float(y)) for n, c, (x, y) in zip(names, clips, coords)]
