"""Shared fixtures: the package's demo clips, the optional ../shared/voices recordings, workspaces,
and the local download server (`server`, `closed_port`: tests/download_server.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.download_server import closed_port, server  # noqa: F401  (fixtures for every test file)
from tests.serve_engines import PacedToneEngine
from voxmith.audio import load_audio
from voxmith.studio import Studio, demo_voice_files

SHARED_VOICES = Path(os.environ.get("VOXMITH_SHARED_VOICES",
                                    Path(__file__).resolve().parents[1].parent / "shared" / "voices"))


@pytest.fixture(scope="session", autouse=True)
def _session_base_voice_cache(tmp_path_factory):
    """The base-voice cache of the module- and session-scoped fixtures (the enrollments a test file
    shares), which run before any test's own folder below is set: one folder for the session, never
    the machine's real cache. They used to read and write ~/.cache/voxmith/base-voices, so a machine
    that had run voxmith skipped joe's duration curve and guard floor (~9 CPU-s of the first
    enrollment) that CI, with an empty cache, pays."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VOXMITH_BASE_VOICE_CACHE", str(tmp_path_factory.mktemp("session-base-voice-cache")))
        yield


@pytest.fixture(autouse=True)
def _private_base_voice_cache(tmp_path_factory, monkeypatch):
    """piper-vc keeps its base voices' self-measurements on disk (base_cache.py): each test gets
    a folder of its own, so a scripted voice's measurement never reaches another test or the
    machine's real cache."""
    monkeypatch.setenv("VOXMITH_BASE_VOICE_CACHE", str(tmp_path_factory.mktemp("base-voice-cache")))


@pytest.fixture(scope="session")
def demo_files() -> list[Path]:
    return demo_voice_files()


@pytest.fixture(scope="session")
def demo_audio(demo_files):
    """The first demo clip, decoded (real LJ Speech audio, 22.05 kHz mono)."""
    return load_audio(demo_files[0])


@pytest.fixture(scope="session")
def shared_voices() -> Path:
    if not SHARED_VOICES.is_dir():
        pytest.skip(f"shared recordings not found at {SHARED_VOICES}")
    return SHARED_VOICES


@pytest.fixture
def run(tmp_path):
    """The CLI on a fresh workspace: run("voices", "list") -> click's Result; run.home is the workspace."""
    from click.testing import CliRunner

    from voxmith.cli.main import cli

    home = tmp_path / "home"

    def invoke(*args, input=None):
        return CliRunner().invoke(cli, ["--home", str(home), "-q", *args], input=input)

    invoke.home = home
    return invoke


@pytest.fixture
def studio(tmp_path) -> Studio:
    return Studio(tmp_path / "workspace", device="cpu")


def tone(seconds: float, rate: int = 22050, freq: float = 220.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture
def tone_engine():
    """The instant `tone` test engine (tests/tone_engine.py), registered for one test only: the
    engine registry is process-wide, and a later test must not find it."""
    from tests.tone_engine import ToneEngine
    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine

    register_engine("tone", ToneEngine)
    yield ToneEngine
    unregister_engine("tone")


@pytest.fixture
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine a 2-thread team that loses
    one core makes each step many times slower; torch's thread count is restored afterwards."""
    from voxmith.torch_threads import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session", autouse=True)
def piper_vc_enrollments_shared():
    """piper-vc's enrollment (warp search, residual network, intelligibility guard) takes ~30 s on
    2 cores and is a pure function of the clips and the engine: a dozen tests enroll the same demo
    clips in fresh workspaces (speak, convert, serve, the web UI, fine-tuning, reference clips). The
    first enrollment of a clip set is computed for real; later ones in this process get copies of
    its arrays. Only stock engines share whole conditionings, keyed by all the result depends on:
    the engine's class and cache key (name, version), its device, the model files it finds
    (piper-vc's come with packages, the same for every workspace), and every clip's samples and
    rate. The two halves of an enrollment are shared the same way for tests that call them
    directly: `enrollment.enroll` (Whisper on the clips, WORLD analysis, base voice choice, warp
    search; independent of the engine's weights), keyed by the clips and its arguments, and a stock
    engine's `conditioning_from` on a result it handed out (residual network, intelligibility
    guard), whose progress events are replayed to a later caller. A fine-tuned variant still adapts
    and checks its conditioning for real, without repeating the analysis. The workspace's own
    conditioning cache is untouched (its tests still see misses and hits); enrollments in
    subprocesses (the console-script tests) still run in full."""
    import copy
    import hashlib
    import weakref

    from voxmith.engines.piper_vc import engine as engine_module
    from voxmith.engines.piper_vc import enrollment
    from voxmith.engines.piper_vc import PiperVCEngine

    def digest(samples) -> str:
        return hashlib.sha1(np.ascontiguousarray(samples).tobytes()).hexdigest()

    real = PiperVCEngine.prepare_conditioning
    real_enroll = enrollment.enroll
    real_from = PiperVCEngine.conditioning_from
    done: dict = {}
    enrolled: dict = {}
    handed = weakref.WeakValueDictionary()  # id(a copy of an enrollment result) -> that copy...
    handed_keys: dict = {}  # ...-> its enroll key
    adapted: dict = {}

    def engine_key(engine, *rest):
        models = tuple(str(f.path) for f in type(engine).model_files(engine.models_dir))
        return (type(engine), engine.cache_key(), str(engine.device), models, *rest)

    def shared(self, clips, progress=None):
        if self.stock is not self:
            return real(self, clips, progress)
        key = engine_key(self, tuple((digest(c.samples), c.sample_rate_hz, c.samples.shape) for c in clips))
        if key not in done:
            done[key] = real(self, clips, progress)
        return {name: array.copy() for name, array in done[key].items()}

    def shared_enroll(clips, *, ridge_mix=0.5, ridge_lambda=30.0, cov_mix=0.0, candidates=None, progress=None):
        key = (tuple((digest(x), rate, np.shape(x)) for x, rate in clips), float(ridge_mix), float(ridge_lambda),
               float(cov_mix), None if candidates is None else tuple(candidates))
        if key not in enrolled:
            enrolled[key] = real_enroll(clips, ridge_mix=ridge_mix, ridge_lambda=ridge_lambda, cov_mix=cov_mix,
                                        candidates=candidates, progress=progress)
        out = copy.deepcopy(enrolled[key])
        handed[id(out)], handed_keys[id(out)] = out, key
        return out

    def shared_from(self, result, progress=None):
        if self.stock is not self or handed.get(id(result)) is not result:
            return real_from(self, result, progress)
        key = engine_key(self, handed_keys[id(result)])
        if key not in adapted:
            events = []

            def record(event):
                events.append(event)
                if progress is not None:
                    progress(event)
            adapted[key] = (real_from(self, result, record), events)
        elif progress is not None:
            for event in adapted[key][1]:
                progress(event)
        return {name: array.copy() for name, array in adapted[key][0].items()}

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PiperVCEngine, "prepare_conditioning", shared)
        patch.setattr(enrollment, "enroll", shared_enroll)
        patch.setattr(engine_module, "enroll", shared_enroll)
        patch.setattr(PiperVCEngine, "conditioning_from", shared_from)
        yield


@pytest.fixture
def finetune_check_passes(monkeypatch):
    """piper-vc's fine-tune check (engine.check_finetune: the base voice's floor and the guard's
    ladder, each sentence heard by Whisper; ~20 s on 2 cores per voice and weights) answered as a
    check that passed with nothing backed off, for tests about something else that put weights to
    use. The real check runs in test_training_studio.py (CLI `voices use`), its logic with scripted
    listening there and in test_piper_vc_training.py."""
    from voxmith.engines.piper_vc import PiperVCEngine

    calls = []

    def passed(self, conditioning, progress=None, transcribe=None):
        calls.append(self.finetune_check_key())
        return {}

    monkeypatch.setattr(PiperVCEngine, "check_finetune", passed)
    return calls


@pytest.fixture(autouse=True)
def paced_tone_undelayed():
    """The paced test engine (tests/serve_engines.py) answers at once unless a test slows it, and
    a test that slows it never leaves it slow for the next."""
    PacedToneEngine.delay_s = 0.0
    yield
    PacedToneEngine.delay_s = 0.0


@pytest.fixture(autouse=True)
def torch_thread_count_kept():
    """A test that leaves torch's process-wide thread count changed (threads started later copy it:
    voxmith.torch_threads) fails here, and the count is put back so that the next tests run as alone."""
    yield
    import sys

    if "torch" not in sys.modules:
        return
    import torch

    from voxmith.torch_threads import active_bodies, new_thread_count

    if active_bodies():
        return  # a body still running on another thread holds its count on purpose
    seen, here = new_thread_count(), torch.get_num_threads()
    if seen != here:
        torch.set_num_threads(here)
        pytest.fail(f"torch's thread count for new threads was left at {seen} (this thread: {here})")
