"""The GE2E speaker encoder on real recordings: same speaker scores above different speakers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.concurrency import run_at_once
from voxmith.audio import load_audio
from voxmith.speaker import cosine_similarity, get_speaker_encoder, mean_embedding


@pytest.fixture(scope="module")
def encoder():
    return get_speaker_encoder("cpu")


def _embed(encoder, path):
    audio = load_audio(path)
    return encoder.embed(audio.samples, audio.sample_rate_hz)


def test_demo_clips_are_one_speaker(encoder, demo_files):
    a, b = (_embed(encoder, p) for p in demo_files)
    assert a.shape == (256,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-4)
    assert cosine_similarity(a, b) > 0.8


def test_embedding_is_deterministic(encoder, demo_files):
    assert np.array_equal(_embed(encoder, demo_files[0]), _embed(encoder, demo_files[0]))


def test_same_speaker_scores_higher_than_different(encoder, shared_voices):
    speakers = {}
    for folder in sorted(p for p in shared_voices.iterdir() if p.is_dir()):
        clips = sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".mp3"))
        if len(clips) >= 2:
            speakers[folder.name] = [_embed(encoder, p) for p in clips[:3]]
    assert len(speakers) >= 6
    same = [cosine_similarity(a, b) for embs in speakers.values() for a, b in itertools.combinations(embs, 2)]
    different = [cosine_similarity(a, b) for (_, x), (_, y) in itertools.combinations(speakers.items(), 2)
                 for a in x for b in y]
    assert np.mean(same) > np.mean(different) + 0.15
    # Identification: each speaker's held-out clip is closest to its own other clips.
    correct = 0
    for name, embs in speakers.items():
        centroids = {n: mean_embedding(e[:-1] if n == name else e) for n, e in speakers.items()}
        best = max(centroids, key=lambda n: cosine_similarity(embs[-1], centroids[n]))
        correct += best == name
    assert correct >= len(speakers) - 1


def test_whole_clip_is_used(encoder, shared_voices, demo_files):
    """Appending another speaker to the end of a clip must move its embedding."""
    lj = load_audio(demo_files[0])
    other = load_audio(shared_voices / "tom" / "1.wav", sample_rate_hz=lj.sample_rate_hz)
    alone = encoder.embed(lj.samples, lj.sample_rate_hz)
    joined = encoder.embed(np.concatenate([lj.samples, other.samples]), lj.sample_rate_hz)
    assert cosine_similarity(alone, joined) < 0.95


def test_long_clips_are_embedded_in_chunks_alike(encoder, demo_files, monkeypatch):
    """Clips longer than CHUNK_S are embedded a chunk at a time (bounded memory); the windows'
    mean is nearly the one of a single pass (only the windows across chunk borders differ)."""
    from voxmith.speaker import encoder as encoder_module

    audio = load_audio(demo_files[0])
    whole = encoder.embed(audio.samples, audio.sample_rate_hz)
    monkeypatch.setattr(encoder_module, "CHUNK_S", 3)  # the demo clip then spans several chunks
    chunked = encoder.embed(audio.samples, audio.sample_rate_hz)
    assert chunked.shape == whole.shape and np.linalg.norm(chunked) == pytest.approx(1.0, abs=1e-4)
    assert cosine_similarity(whole, chunked) > 0.99


def test_embedding_leaves_the_warning_filters_alone(encoder, monkeypatch):
    """Two threads embed at once in enrollment's warp search: silence's floating-point warnings are
    silenced for the calling thread (numpy's errstate), never by swapping the process's warning
    filters (warnings.catch_warnings, which two threads at once can leave changed)."""
    import warnings
    from types import SimpleNamespace

    from voxmith.speaker import encoder as encoder_module

    def swapped(*args, **kwargs):
        raise AssertionError("the process's warning filters were swapped")

    monkeypatch.setattr(encoder_module, "warnings", SimpleNamespace(catch_warnings=swapped, simplefilter=swapped))
    silence = np.zeros(16000, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a warning silence raised would fail here
        assert encoder.embed(silence, 16000).shape == (256,)
    filters = list(warnings.filters)
    errors = run_at_once(lambda: encoder.embed(silence, 16000))
    assert errors == [] and warnings.filters == filters
