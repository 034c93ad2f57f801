"""The conditioning cache: computed once per clip set and producer version, recomputed on change."""

from __future__ import annotations

import shutil

import numpy as np
import soundfile as sf

from voxmith.studio.conditioning import CacheKey
from voxmith.studio.voice_report import voice_embeddings


class CountingProducer:
    """A real (tiny) computation over the clips that counts how often it runs."""

    def __init__(self, voice):
        self.voice, self.calls = voice, 0

    def __call__(self):
        self.calls += 1
        clips = self.voice.load_clips()
        return {"rms": np.array([np.sqrt(np.mean(c.samples ** 2)) for c in clips]),
                "count": np.array(len(clips))}


def _key(voice, version="v1"):
    return CacheKey("test-engine", version, voice.fingerprint())


def test_second_run_does_not_recompute(studio, demo_files):
    voice = studio.voices.add("v", demo_files)
    producer = CountingProducer(voice)
    first, cached1 = voice.cache.get_or_compute(_key(voice), producer)
    second, cached2 = voice.cache.get_or_compute(_key(voice), producer)
    assert (cached1, cached2) == (False, True)
    assert producer.calls == 1
    np.testing.assert_array_equal(first["rms"], second["rms"])


def test_changed_added_removed_clips_invalidate(studio, demo_files):
    voice = studio.voices.add("v", demo_files[:1])
    producer = CountingProducer(voice)
    voice.cache.get_or_compute(_key(voice), producer)

    studio.voices.add("v", demo_files[1:], append=True)  # added
    arrays, cached = voice.cache.get_or_compute(_key(voice), producer)
    assert not cached and int(arrays["count"]) == 2

    clip = voice.clip_paths[0]  # changed in place, same name
    data, rate = sf.read(clip)
    sf.write(clip, data * 0.5, rate)
    arrays, cached = voice.cache.get_or_compute(_key(voice), producer)
    assert not cached

    voice.clip_paths[1].unlink()  # removed
    arrays, cached = voice.cache.get_or_compute(_key(voice), producer)
    assert not cached and int(arrays["count"]) == 1
    assert producer.calls == 4
    # Only the newest entry is kept.
    assert len(list((voice.path / ".cache" / "test-engine").glob("*.npz"))) == 1


def test_new_producer_version_misses(studio, demo_files):
    voice = studio.voices.add("v", demo_files)
    producer = CountingProducer(voice)
    voice.cache.get_or_compute(_key(voice, "v1"), producer)
    _, cached = voice.cache.get_or_compute(_key(voice, "v2"), producer)
    assert not cached and producer.calls == 2


def test_damaged_entry_is_recomputed(studio, demo_files):
    voice = studio.voices.add("v", demo_files)
    producer = CountingProducer(voice)
    voice.cache.get_or_compute(_key(voice), producer)
    for npz in (voice.path / ".cache").rglob("*.npz"):
        npz.write_bytes(b"truncated")
    arrays, cached = voice.cache.get_or_compute(_key(voice), producer)
    assert not cached and arrays["rms"].shape == (2,)


def test_speaker_embeddings_cached_and_refreshed(studio, demo_files):
    voice = studio.voices.add("v", demo_files)
    clip_embeddings, speaker, cached = voice_embeddings(voice)
    assert not cached and clip_embeddings.shape == (2, 256)
    again, _, cached = voice_embeddings(voice)
    assert cached and np.array_equal(again, clip_embeddings)
    shutil.copy(demo_files[0], voice.path / "extra.flac")
    third, _, cached = voice_embeddings(voice)
    assert not cached and third.shape == (3, 256)
