"""base_cache: a base voice's self-measurements kept on disk between processes (scripted)."""

from __future__ import annotations

import json

import numpy as np

from voxmith.engines.piper_vc import base_cache


def _profile_ok(value):
    return base_cache.finite_numbers([value["f0_hz"]]) and base_cache.finite_numbers(value["embedding"], 2)


def test_a_value_is_measured_once_then_read_back_and_a_damaged_file_is_measured_again(tmp_path, monkeypatch):
    monkeypatch.setattr(base_cache, "folder", lambda: tmp_path / "cache")
    calls = []

    def measure():
        calls.append(1)
        return {"f0_hz": 120.5, "embedding": [0.25, 0.5]}

    first = base_cache.remembered("profile", ("joe", "1", "2"), measure, _profile_ok)
    again = base_cache.remembered("profile", ("joe", "1", "2"), measure, _profile_ok)
    assert first == again == {"f0_hz": 120.5, "embedding": [0.25, 0.5]} and len(calls) == 1
    # Another identity (another model file, runtime or style) is another value.
    base_cache.remembered("profile", ("joe", "1", "3"), measure, _profile_ok)
    assert len(calls) == 2
    files = sorted((tmp_path / "cache").iterdir())
    assert len(files) == 2
    damaged = ["{not json", json.dumps({"f0_hz": 1.0}), json.dumps({"f0_hz": 1.0, "embedding": "x"}),
               json.dumps({"f0_hz": float("nan"), "embedding": [0.1, 0.2]}),
               json.dumps({"f0_hz": 1.0, "embedding": [0.1]})]  # unreadable, a field missing, wrong types, NaN, length
    for k, text in enumerate(damaged):
        files[0].write_text(text, encoding="utf-8")
        value = base_cache.remembered("profile", ("joe", "1", "2") if files[0].name == _name(tmp_path, ("joe", "1", "2"))
                                      else ("joe", "1", "3"), measure, _profile_ok)
        assert value == {"f0_hz": 120.5, "embedding": [0.25, 0.5]} and len(calls) == 3 + k


def _name(tmp_path, identity):
    return base_cache._path(tmp_path / "cache", "profile", identity).name


def test_without_an_identity_every_call_measures_and_nothing_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(base_cache, "folder", lambda: tmp_path / "cache")
    calls = []
    for _ in range(2):
        base_cache.remembered("rate-curve", None, lambda: calls.append(1) or {"scales": [1.0], "ratios": [1.0]},
                              lambda v: True)
    assert len(calls) == 2 and not (tmp_path / "cache").exists()


def test_an_unwritable_folder_only_costs_the_measurement(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setattr(base_cache, "folder", lambda: blocker / "cache")  # under a file: mkdir fails
    value = base_cache.remembered("profile", ("joe",), lambda: {"f0_hz": 1.0, "embedding": [0.0, 1.0]}, _profile_ok)
    assert value["f0_hz"] == 1.0


def test_the_cache_folder_needs_nothing_loaded(monkeypatch, tmp_path):
    monkeypatch.delenv(base_cache.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert base_cache.folder() == tmp_path / "voxmith" / base_cache.FOLDER_NAME


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


def test_identity_names_the_voice_and_the_parts_and_a_voice_without_one_has_none():
    class Voice:
        identity = ("joe", "123")

    assert base_cache.identity_of(Voice(), ("a", "b"), (0.8, 1.0)) == ("joe", "123", "a", "b", "0.8", "1.0")
    assert base_cache.identity_of(object(), ("a",)) is None
