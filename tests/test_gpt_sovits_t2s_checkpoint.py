"""Loading official GPT-SoVITS GPT (s1) checkpoints: the official key layout at full size, the file
formats the official code writes, and clear refusals of files that are not s1 checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from tests.fixtures.gpt_sovits.t2s_weights import TINY_MODEL_CONFIG, golden_t2s_state, max_abs_diff
from tests.fixtures.tortoise.golden import FIXTURES_DIR as TORTOISE_FIXTURES
from voxmith.engines.gpt_sovits.t2s import T2SConfig, Text2SemanticModel
from voxmith.engines.gpt_sovits.t2s_checkpoint import T2SCheckpointError, load_t2s_checkpoint
from voxmith.errors import VoxmithError

FIXTURES = TORTOISE_FIXTURES.parent / "gpt_sovits"
KEYS = FIXTURES / "keys"


@pytest.mark.parametrize("name", ["v1", "v2", "tiny"])
def test_official_key_layout(name):
    """Our modules have exactly the official Lightning module's keys and shapes (meta device)."""
    dumped = json.loads((KEYS / f"keys_t2s_{name}.json").read_text())
    with torch.device("meta"):
        model = Text2SemanticModel(T2SConfig.from_official({"model": dumped["config"]}))
    ours = {"model." + k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == dumped["keys"]


def test_v2_config_is_the_default():
    dumped = json.loads((KEYS / "keys_t2s_v2.json").read_text())
    assert T2SConfig.from_official({"model": dumped["config"]}) == T2SConfig()


@pytest.fixture(scope="module")
def golden():
    return torch.load(FIXTURES / "t2s.pt", map_location="cpu", weights_only=True)


def official_weights(seed: int, dtype=torch.float32) -> dict:
    """The state an official tiny s1 file would hold, keyed by the official names (from the key dump)."""
    dumped = json.loads((KEYS / "keys_t2s_tiny.json").read_text())
    empty = {k: torch.zeros(shape) for k, shape in dumped["keys"].items()}
    return {k: v.to(dtype) for k, v in golden_t2s_state(empty, seed, prefix="model.").items()}


def test_exported_s1_file_loads_and_matches_official(tmp_path, golden):
    path = tmp_path / "voice-e15.ckpt"
    torch.save({"weight": official_weights(golden["seed"]), "config": {"model": dict(TINY_MODEL_CONFIG),
                "data": {"max_sec": 20}}, "info": "GPT-e15"}, path)
    loaded = load_t2s_checkpoint(path)
    assert loaded.info == "GPT-e15" and loaded.max_sec == 20 and loaded.early_stop_num == 1000
    assert not loaded.model.training
    with torch.no_grad():
        got = loaded.model(golden["full_phones"], golden["full_bert"], golden["full_codes"])
    assert max_abs_diff(got, golden["full_logits"]) <= 1e-4


def test_half_precision_file_and_lightning_checkpoint(tmp_path, golden):
    """Fine-tuned exports store float16; full Lightning checkpoints keep `state_dict` + hyper_parameters."""
    config = {"model": dict(TINY_MODEL_CONFIG), "data": {"max_sec": 54}}
    half = tmp_path / "half.ckpt"
    torch.save({"weight": official_weights(golden["seed"], torch.float16), "config": config}, half)
    lightning = tmp_path / "epoch=1.ckpt"
    torch.save({"state_dict": official_weights(golden["seed"]), "hyper_parameters": {"config": config},
                "epoch": 1}, lightning)
    for path, tol in ((half, 0.05), (lightning, 1e-4)):
        loaded = load_t2s_checkpoint(path)
        assert loaded.model.bert_proj.weight.dtype == torch.float32
        with torch.no_grad():
            got = loaded.model(golden["full_phones"], golden["full_bert"], golden["full_codes"])
        assert max_abs_diff(got, golden["full_logits"]) <= tol
        assert loaded.info is None and loaded.early_stop_num == 2700


def test_refuses_files_that_are_not_s1_checkpoints(tmp_path, golden):
    config = {"model": dict(TINY_MODEL_CONFIG)}
    cases = {
        "missing.ckpt": (None, "does not exist"),
        "garbage.ckpt": (b"not a checkpoint at all", "cannot be read"),
        "sovits_v2pro.pth": (b"05" + b"\0" * 64, "SoVITS"),
        "tensor.pt": (torch.zeros(3), "not a GPT-SoVITS checkpoint"),
        "other.pt": ({"model": {}}, "neither"),
        "s2G.pth": ({"weight": {"enc_p.proj.weight": torch.zeros(2)}, "config": config}, "SoVITS"),
        "bigger.ckpt": ({"weight": official_weights(golden["seed"]),
                         "config": {"model": dict(TINY_MODEL_CONFIG, n_layer=3)}}, "do not fit"),
        "badconfig.ckpt": ({"weight": official_weights(golden["seed"]),
                            "config": {"model": {"head": 4}}}, "cannot size"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            torch.save(content, path)
        with pytest.raises(T2SCheckpointError, match=message) as err:
            load_t2s_checkpoint(path)
        assert isinstance(err.value, VoxmithError) and "s1" in str(err.value)


def test_refuses_pickled_code(tmp_path):
    """weights_only loading: a file that would run code when unpickled is refused, not executed."""
    path = tmp_path / "evil.ckpt"
    torch.save({"weight": {}, "config": {"model": {}}, "payload": Exploit()}, path)
    with pytest.raises(T2SCheckpointError, match="cannot be read"):
        load_t2s_checkpoint(path)


class Exploit:
    def __reduce__(self):
        return (print, ("unpickled!",))
