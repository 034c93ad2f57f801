"""The engine interface, the registry, settings validation and device selection."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tone_engine import ToneEngine, ToneSettings
from voxmith.engines import create_engine, register_engine, resolve_device
from voxmith.engines import device as device_module
from voxmith.engines.registry import available_engines, unregister_engine
from voxmith.errors import DeviceError, EngineError, VoxmithError


def test_registered_engine_plugs_into_studio(studio, demo_files, tone_engine):
    assert "tone" in available_engines()
    studio.voices.add("v", demo_files)
    engine = studio.engine("tone")
    cond, cached = studio.conditioning("v", engine)
    assert not cached and float(cond["rms"]) > 0.01
    _, cached = studio.conditioning("v", engine)
    assert cached
    settings = ToneSettings.from_dict({"pitch_scale": "1.5"})
    takes = engine.synthesize("three short words", cond, settings, seed=7, candidates=2)
    assert len(takes) == 2 and takes[0].duration_s == pytest.approx(0.6)
    again = engine.synthesize("three short words", cond, settings, seed=7, candidates=2)
    assert np.array_equal(takes[1].samples, again[1].samples)


def test_unknown_engine_lists_known(tone_engine):
    with pytest.raises(EngineError, match="Unknown engine 'nope'.*tone"):
        create_engine("nope")


def test_unregister_engine_forgets_it():
    """What the tone_engine fixture relies on to leave no engine behind for later tests."""
    register_engine("tone", ToneEngine)
    unregister_engine("tone")
    assert "tone" not in available_engines()
    with pytest.raises(EngineError, match="Unknown engine 'tone'"):
        create_engine("tone")


def test_settings_from_dict_coerces_and_validates():
    s = ToneSettings.from_dict({"pitch_scale": "2", "vibrato": "yes", "repeats": "3"})
    assert (s.pitch_scale, s.vibrato, s.repeats) == (2.0, True, 3)
    with pytest.raises(VoxmithError, match="Unknown setting.*pitchscale.*pitch_scale"):
        ToneSettings.from_dict({"pitchscale": 2})
    with pytest.raises(VoxmithError, match="repeats.*int.*many"):
        ToneSettings.from_dict({"repeats": "many"})
    with pytest.raises(VoxmithError, match="between"):
        ToneSettings.from_dict({"pitch_scale": 10})
    # JSON values (the HTTP API, sidecars) are checked for their type too, not only strings
    assert ToneSettings.from_dict({"pitch_scale": 2, "vibrato": False, "repeats": 3}).pitch_scale == 2.0
    for bad in ({"vibrato": 0.5}, {"repeats": 2.5}, {"repeats": True}, {"pitch_scale": True},
                {"pitch_scale": [1]}, {"vibrato": None}):
        with pytest.raises(VoxmithError, match=f"Setting '{next(iter(bad))}' must be a"):
            ToneSettings.from_dict(bad)


def test_device_cpu_and_auto_here():
    import torch

    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto") in ("cpu", "mps")


def test_missing_cuda_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match="CPU-only build|no CUDA GPU") as info:
        resolve_device("cuda:0")
    assert "--device cpu" in str(info.value)


def test_unknown_device():
    with pytest.raises(DeviceError, match="auto, cpu, cuda"):
        resolve_device("tpu")


def test_cpu_fallback_with_gpu_present_warns(monkeypatch):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    # No GPU here: pretend the NVIDIA driver exists, as on a machine with a CPU-only torch.
    monkeypatch.setattr(device_module, "nvidia_gpu_present", lambda: True)
    with pytest.warns(device_module.CpuFallbackWarning, match="cannot use it"):
        assert resolve_device("auto") in ("cpu", "mps")


EPYC_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512_bf16 avx512_vnni avx512bw

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9B14
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512dq avx512_bf16 avx512_vnni avx512bw
"""


def test_cpu_features_from_cpuinfo():
    info = device_module.parse_cpuinfo(EPYC_CPUINFO, logical_cpus=2)
    assert info.model == "AMD EPYC 9B14" and info.vendor == "AuthenticAMD" and info.logical_cpus == 2
    assert info.features == ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16")
    assert info.vnni and info.bf16 and not info.amx
    assert info.summary() == "AMD EPYC 9B14 (avx2, fma, avx512f, avx512_vnni, avx512_bf16)"
    assert info.to_dict()["features"] == list(info.features)
    arm = device_module.parse_cpuinfo("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert arm.features == () and not arm.bf16 and arm.model  # a model name is always given
    here = device_module.cpu_info()
    assert here.model and here is device_module.cpu_info()  # read once
