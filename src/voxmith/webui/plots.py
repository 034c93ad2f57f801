"""Figures for the Voices tab: clip-to-clip similarity heat map and the map of all voices."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def similarity_heatmap(matrix: np.ndarray, labels):
    size = max(3.5, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    image = ax.imshow(matrix, vmin=0.5, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] < 0.8 else "black")
    fig.colorbar(image, ax=ax, label="speaker similarity (cosine)")
    ax.set_title("Clip-to-clip speaker similarity")
    fig.tight_layout()
    return fig


def voices_map(points, highlight: str | None = None):
    fig, ax = plt.subplots(figsize=(6, 4.5))
    voices = sorted({p.voice for p in points})
    colors = plt.cm.tab10(np.linspace(0, 1, max(len(voices), 1)))
    for voice, color in zip(voices, colors):
        clips = [p for p in points if p.voice == voice and p.clip]
        centers = [p for p in points if p.voice == voice and not p.clip]
        ax.scatter([p.x for p in clips], [p.y for p in clips], color=color, alpha=0.45, s=25)
        for c in centers:
            ax.scatter([c.x], [c.y], color=color, s=160 if voice == highlight else 90, marker="*",
                       edgecolors="black", linewidths=0.6)
            ax.annotate(voice, (c.x, c.y), textcoords="offset points", xytext=(6, 4), fontsize=9)
    ax.set_title("Voices by speaker embedding (stars: voice, dots: clips)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return fig
