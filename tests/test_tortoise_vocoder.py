"""UnivNet vocoder: golden outputs vs the official generator (tiny size) and checkpoint key sets."""

from __future__ import annotations

import json

import pytest
import torch

from tests.fixtures.tortoise.golden import FIXTURES_DIR, KEYS_DIR
from tests.fixtures.tortoise.golden import max_abs_diff, randomized_state
from voxmith.engines.tortoise.vocoder import (UnivNetConfig, UnivNetGenerator, fold_weight_norm, load_model_g,
                                              to_weight_norm_form)

FIXTURES = FIXTURES_DIR
KEYS = KEYS_DIR
TOL = 1e-4


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURES / "vocoder.pt", weights_only=False)


@pytest.fixture(scope="module")
def model(fx):
    """Our tiny generator loaded from a weight-norm-form checkpoint identical to the official one."""
    net = UnivNetGenerator(UnivNetConfig.tiny()).eval()
    model_g = randomized_state(to_weight_norm_form(net.state_dict()), fx["seed"])
    return load_model_g(net, model_g)


def test_weight_norm_fold_matches_official_removal(fx, model):
    assert max_abs_diff(model.conv_pre.weight, fx["folded_conv_pre"]) <= 1e-6


def test_forward_matches_official(fx, model):
    with torch.no_grad():
        out = model(fx["mel"], fx["z"])
    assert out.shape == fx["forward"].shape == (1, 1, 6 * 256)
    assert max_abs_diff(out, fx["forward"]) <= TOL
    assert max_abs_diff(out, fx["forward_wn"]) <= TOL   # same as official with weight norm still active
    assert float(out.abs().max()) > 1e-3                 # not a degenerate all-zero signal


def test_inference_matches_official_and_rng_order(fx, model):
    torch.manual_seed(fx["infer_seed"])
    wav = model.inference(fx["mel"])
    after = torch.randn(4)
    assert wav.shape == (1, 1, 6 * 256)
    assert max_abs_diff(wav, fx["inference"]) <= TOL
    assert float(wav.abs().max()) <= 1.0
    assert torch.equal(after, fx["after"])               # consumed exactly randn(1, 64, T + 10)


def test_fold_rejects_orphan_gain():
    with pytest.raises(KeyError):
        fold_weight_norm({"a.weight_g": torch.ones(2, 1, 1)})


def _meta_shapes(state: dict) -> dict:
    return {k: list(v.shape) for k, v in state.items()}


@pytest.mark.parametrize("tiny", [False, True])
def test_keys_and_shapes(tiny):
    suffix = "_tiny" if tiny else ""
    plain = json.loads((KEYS / f"keys_vocoder_removed_wn{suffix}.json").read_text())
    model_g = json.loads((KEYS / f"keys_vocoder_model_g{suffix}.json").read_text())
    with torch.device("meta"):
        net = UnivNetGenerator(UnivNetConfig.tiny() if tiny else UnivNetConfig())
    ours = _meta_shapes(net.state_dict())
    assert ours == plain
    assert _meta_shapes(to_weight_norm_form(net.state_dict())) == model_g
    # A checkpoint with the official model_g layout folds to exactly our keys and shapes.
    fake = {k: torch.empty(shape, device="meta") for k, shape in model_g.items()}
    assert _meta_shapes(fold_weight_norm(fake)) == plain
