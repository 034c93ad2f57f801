"""The official SV2TTS checkpoint files: where they are found, their download (against a local HTTP
server, as tests/test_download.py does for tortoise), `voxmith models` for sv2tts, loading by the
official key names, and the encoder weights the resemblyzer package ships."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from tests.fixtures.sv2tts.golden import KEYS_DIR
from voxmith.engines.sv2tts import checkpoints as ckpt
from voxmith.errors import VoxmithError

SMALL_SIZES = {"encoder.pt": 3000, "synthesizer.pt": 5000, "vocoder.pt": 4000}


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    home = tmp_path / "userhome"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for var in ("VOXMITH_SV2TTS_MODELS", "VOXMITH_SV2TTS_BASE_URL", "HF_HOME", "HF_HUB_CACHE", "XDG_CACHE_HOME",
                "HF_ENDPOINT", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "VOXMITH_HOME"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def small_files(monkeypatch):
    """The checkpoints with small official sizes, so a local server can serve them quickly."""
    entries = tuple(dataclasses.replace(c, size_bytes=SMALL_SIZES[c.name], sha256=None) for c in ckpt.CHECKPOINTS)
    monkeypatch.setattr(ckpt, "CHECKPOINTS", entries)
    monkeypatch.setattr(ckpt, "BY_NAME", {c.name: c for c in entries})
    return {name: os.urandom(size) for name, size in SMALL_SIZES.items()}


def _sized_file(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: takes no disk space
    return path


def test_default_urls_are_the_official_repository(clean_env, monkeypatch):
    assert ckpt.checkpoint_url("synthesizer.pt") == "https://huggingface.co/CorentinJ/SV2TTS/resolve/main/synthesizer.pt"
    assert [c.size_bytes for c in ckpt.CHECKPOINTS] == [17_090_379, 370_554_559, 53_845_290]
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example/")
    assert ckpt.checkpoint_url("encoder.pt") == "https://hf-mirror.example/CorentinJ/SV2TTS/resolve/main/encoder.pt"
    monkeypatch.setenv("VOXMITH_SV2TTS_BASE_URL", "http://mirror.local/sv2tts/")
    assert ckpt.checkpoint_url("vocoder.pt") == "http://mirror.local/sv2tts/vocoder.pt"
    with pytest.raises(VoxmithError, match="Known files"):
        ckpt.checkpoint_url("pretrained.pt")


def test_existing_saved_models_folders_are_found(clean_env, tmp_path):
    """A Real-Time-Voice-Cloning checkout's saved_models/default/ (in the current folder, in
    ~/Real-Time-Voice-Cloning, or below an explicit folder) and the hub cache; only files of the
    official size count."""
    cwd_copy = _sized_file(tmp_path / "saved_models" / "default" / "encoder.pt", 17_090_379)
    _sized_file(tmp_path / "saved_models" / "default" / "vocoder.pt", 1234)  # cut off: ignored
    home_copy = _sized_file(clean_env / "Real-Time-Voice-Cloning" / "saved_models" / "default" / "vocoder.pt",
                            53_845_290)
    found = ckpt.find_checkpoints()
    assert found["encoder.pt"].path == cwd_copy and found["encoder.pt"].source == "saved_models/default"
    assert found["vocoder.pt"].path == home_copy and found["vocoder.pt"].source == "Real-Time-Voice-Cloning"
    assert found["synthesizer.pt"] is None
    with pytest.raises(VoxmithError, match=r"checkpoint\(s\) synthesizer.pt .*voxmith models download sv2tts"):
        ckpt.ensure_checkpoints(workspace_models=tmp_path / "ws" / "models")

    explicit = _sized_file(tmp_path / "rtvc" / "saved_models" / "default" / "synthesizer.pt", 370_554_559)
    assert ckpt.find_checkpoint("synthesizer.pt", models_dir=tmp_path / "rtvc").path == explicit
    hub = _sized_file(clean_env / ".cache" / "huggingface" / "hub" / ckpt.HF_CACHE_FOLDER / "snapshots" / "abc"
                      / "synthesizer.pt", 370_554_559)
    assert ckpt.find_checkpoint("synthesizer.pt").path == hub


def test_download_checks_the_official_size(clean_env, server, small_files, tmp_path, monkeypatch):
    server.files.update(small_files)
    server.wrong_bodies["vocoder.pt"] = small_files["vocoder.pt"][:-10]
    monkeypatch.setenv("VOXMITH_SV2TTS_BASE_URL", f"{server.url}/files")
    folder = tmp_path / "ws" / "models" / "sv2tts"
    paths = ckpt.download_checkpoints(["encoder.pt"], folder)
    assert paths["encoder.pt"].read_bytes() == small_files["encoder.pt"]
    with pytest.raises(VoxmithError, match="vocoder.pt"):
        ckpt.download_checkpoints(["vocoder.pt"], folder)
    assert not (folder / "vocoder.pt").exists()


@pytest.fixture
def voxmith(clean_env, tmp_path):
    from voxmith.cli.main import cli

    workspace = tmp_path / "workspace"

    def invoke(*args):
        return CliRunner().invoke(cli, ["--home", str(workspace), *args])

    invoke.models = workspace / "models" / "sv2tts"
    return invoke


def test_cli_downloads_and_lists_sv2tts(voxmith, server, small_files, monkeypatch):
    server.files.update(small_files)
    server.etags.update(small_files)  # the server declares each file's sha256, as the hub does
    monkeypatch.setenv("VOXMITH_SV2TTS_BASE_URL", f"{server.url}/files")
    before = voxmith("models", "list", "sv2tts")
    assert before.exit_code == 0, before.output
    assert "CorentinJ/SV2TTS" in before.output and "missing" in before.output

    result = voxmith("-q", "models", "download", "sv2tts")
    assert result.exit_code == 0, result.output
    for name, data in small_files.items():
        assert (voxmith.models / name).read_bytes() == data
    again = voxmith("-q", "models", "download", "sv2tts")
    assert again.exit_code == 0 and again.output.count("already present") == 3
    assert len(server.requests) == 3
    listing = voxmith("models", "list", "sv2tts")
    assert listing.exit_code == 0 and str(voxmith.models / "synthesizer.pt") in listing.output


def test_cli_offline_is_one_clear_error(voxmith, monkeypatch):
    monkeypatch.setenv("VOXMITH_SV2TTS_BASE_URL", "http://127.0.0.1:9")
    result = voxmith("-q", "models", "download", "sv2tts")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "offline" in result.output and "VOXMITH_SV2TTS_MODELS" in result.output


# --- loading ---------------------------------------------------------------------------------------

def test_damaged_or_foreign_files_are_refused_clearly(tmp_path):
    from voxmith.engines.sv2tts.bundle import load_strict, read_model_state
    from voxmith.engines.sv2tts.hparams import EncoderConfig
    from voxmith.engines.sv2tts.speaker_encoder import SpeakerEncoder

    damaged = tmp_path / "encoder.pt"
    damaged.write_bytes(b"not a checkpoint")
    with pytest.raises(VoxmithError, match="Cannot read the speaker encoder checkpoint"):
        read_model_state(damaged, "speaker encoder")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(VoxmithError, match="no 'model_state'"):
        read_model_state(tmp_path / "other.pt", "speaker encoder")
    model = SpeakerEncoder(EncoderConfig.tiny())
    state = model.state_dict()
    state.pop("linear.bias")
    with pytest.raises(VoxmithError, match="1 key"):
        load_strict(model, state, tmp_path / "x.pt", "speaker encoder")


def _resemblyzer_weights() -> Path:
    resemblyzer = pytest.importorskip("resemblyzer")
    return Path(resemblyzer.__file__).parent / "pretrained.pt"


def test_resemblyzer_ships_the_official_encoder(clean_env):
    """resemblyzer's pretrained.pt IS the official encoder.pt: the same size (17,090,379 bytes) and
    the sha256 the hub lists for CorentinJ/SV2TTS encoder.pt; the checkpoint layout (step,
    model_state, optimizer_state) and the official encoder's keys and shapes; it loads strictly into
    voxmith's SpeakerEncoder, and sv2tts uses it when no other copy of encoder.pt is found."""
    from voxmith.engines.sv2tts.bundle import load_strict, read_model_state
    from voxmith.engines.sv2tts.speaker_encoder import SpeakerEncoder

    path = _resemblyzer_weights()
    assert path.stat().st_size == ckpt.BY_NAME["encoder.pt"].size_bytes
    assert ckpt.file_sha256(path) == ckpt.BY_NAME["encoder.pt"].sha256
    assert ckpt.find_checkpoint("encoder.pt") == ckpt.Location(path, "resemblyzer package")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert sorted(checkpoint) == ["model_state", "optimizer_state", "step"]
    official = json.loads((KEYS_DIR / "keys_encoder.json").read_text())
    shapes = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in checkpoint["model_state"].items()}
    assert shapes == official
    model = SpeakerEncoder()
    load_strict(model, read_model_state(path, "speaker encoder"), path, "speaker encoder")


def test_voxmith_encoder_equals_resemblyzers_on_its_weights():
    """The same architecture: with resemblyzer's weights, voxmith's encoder and resemblyzer's
    VoiceEncoder give the same embeddings (they differ only by the official 1e-5 in the norm)."""
    import warnings

    from voxmith.engines.sv2tts.bundle import read_model_state
    from voxmith.engines.sv2tts.speaker_encoder import SpeakerEncoder

    path = _resemblyzer_weights()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from resemblyzer import VoiceEncoder
    theirs = VoiceEncoder("cpu", verbose=False).eval()
    ours = SpeakerEncoder()
    ours.load_state_dict(read_model_state(path, "speaker encoder"))
    mels = torch.rand(2, 40, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert float((ours.eval()(mels) - theirs(mels)).abs().max()) < 1e-5




def test_engine_loads_checkpoint_files_by_official_key_names(clean_env, small_files, tmp_path):
    """Files in the official layout ({"model_state": ...}, tiny sizes here) found in the workspace
    load strictly; the engine then speaks with exactly those weights."""
    import numpy as np

    from voxmith.audio import load_audio
    from voxmith.engines.sv2tts.bundle import SV2TTSModels
    from voxmith.engines.sv2tts.engine import SV2TTSEngine
    from voxmith.studio import demo_voice_files

    reference = SV2TTSModels.tiny(seed=11)
    folder = tmp_path / "ws" / "models" / "sv2tts"
    folder.mkdir(parents=True)
    for name, module in (("encoder.pt", reference.encoder), ("synthesizer.pt", reference.synthesizer),
                         ("vocoder.pt", reference.vocoder)):
        torch.save({"model_state": module.state_dict(), "step": 3}, folder / name)
    entries = tuple(dataclasses.replace(c, size_bytes=(folder / c.name).stat().st_size) for c in ckpt.CHECKPOINTS)
    ckpt.CHECKPOINTS, ckpt.BY_NAME = entries, {c.name: c for c in entries}  # restored by small_files' monkeypatch

    engine = SV2TTSEngine("cpu", models_dir=tmp_path / "ws" / "models")
    engine.model_configs = {"encoder.pt": reference.encoder.config, "synthesizer.pt": reference.synthesizer.config,
                            "vocoder.pt": reference.vocoder.config}
    clip = [load_audio(demo_voice_files()[0])]
    settings = {"max_seconds": 1.0, "target_samples": 200, "overlap_samples": 20}
    loaded = engine.synthesize("Hello.", engine.prepare_conditioning(clip), engine.settings_class.from_dict(settings),
                               seed=4)[0]
    direct = SV2TTSEngine.with_models(reference)
    expected = direct.synthesize("Hello.", direct.prepare_conditioning(clip), direct.settings_class.from_dict(settings),
                                 seed=4)[0]
    assert np.array_equal(loaded.samples, expected.samples)


def test_cache_key_names_an_unofficial_encoder(clean_env, tmp_path):
    """The voice cache is keyed by the encoder's weights: the official file (here resemblyzer's copy)
    gives the plain key; another encoder.pt of the same size (a retrained one) its own key."""
    from voxmith.engines.sv2tts.engine import SV2TTSEngine

    _resemblyzer_weights()
    workspace_models = tmp_path / "ws" / "models"
    assert SV2TTSEngine("cpu", workspace_models).cache_key() == "sv2tts-1"
    _sized_file(workspace_models / "sv2tts" / "encoder.pt", ckpt.BY_NAME["encoder.pt"].size_bytes)
    key = SV2TTSEngine("cpu", workspace_models).cache_key()
    assert key.startswith("sv2tts-1-enc-") and len(key) == len("sv2tts-1-enc-") + 12
