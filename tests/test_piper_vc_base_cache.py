"""base_cache: a base voice's self-measurements kept on disk between processes (scripted)."""

from __future__ import annotations

import json

import numpy as np

from voxmith.engines.piper_vc import base_cache


def test_a_value_is_measured_once_then_read_back_and_a_damaged_file_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setattr(base_cache, "folder", lambda: tmp_path / "cache")
    calls = []

    def measure():
        calls.append(1)
        return {"f0_hz": 120.5, "embedding": [0.25, 0.5]}

    first = base_cache.remembered("profile", ("joe", "1", "2"), measure, ("f0_hz", "embedding"))
    again = base_cache.remembered("profile", ("joe", "1", "2"), measure, ("f0_hz", "embedding"))
    assert first == again == {"f0_hz": 120.5, "embedding": [0.25, 0.5]} and len(calls) == 1
    # Another identity (another model file, runtime or style) is another value.
    base_cache.remembered("profile", ("joe", "1", "3"), measure, ("f0_hz", "embedding"))
    assert len(calls) == 2
    files = sorted((tmp_path / "cache").iterdir())
    assert len(files) == 2
    files[0].write_text("{not json", encoding="utf-8")
    files[1].write_text(json.dumps({"f0_hz": 1.0}), encoding="utf-8")  # a field missing
    base_cache.remembered("profile", ("joe", "1", "2"), measure, ("f0_hz", "embedding"))
    base_cache.remembered("profile", ("joe", "1", "3"), measure, ("f0_hz", "embedding"))
    assert len(calls) == 4


def test_without_a_cache_folder_every_call_measures(monkeypatch):
    monkeypatch.setattr(base_cache, "folder", lambda: None)
    calls = []
    for _ in range(2):
        base_cache.remembered("rate-curve", ("x",), lambda: calls.append(1) or {"scales": [1.0], "ratios": [1.0]},
                              ("scales", "ratios"))
    assert len(calls) == 2


def test_an_unwritable_folder_only_costs_the_measurement(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setattr(base_cache, "folder", lambda: blocker / "cache")  # under a file: mkdir fails
    value = base_cache.remembered("profile", ("joe",), lambda: {"f0_hz": 1.0, "embedding": []}, ("f0_hz", "embedding"))
    assert value["f0_hz"] == 1.0


def test_a_real_profile_is_read_back_by_a_later_process_without_speaking(monkeypatch):
    """Joe's profile (two sentences, Piper + WORLD + GE2E) measured once; with the in-process
    cache emptied, as in a new process, it comes back from disk and joe says nothing."""
    from voxmith.engines.piper_vc import base_choice
    from voxmith.engines.piper_vc.base_voice import JOE, get_base_voice

    monkeypatch.setattr(base_choice, "_profiles", {})
    first = base_choice.profile(JOE)
    monkeypatch.setattr(base_choice, "_profiles", {})

    def silent(*args, **kwargs):
        raise AssertionError("the profile was measured again")

    monkeypatch.setattr(get_base_voice(JOE), "speak", silent)
    again = base_choice.profile(JOE)
    assert again.f0_hz == first.f0_hz
    assert np.allclose(again.embedding, first.embedding, atol=1e-6)
