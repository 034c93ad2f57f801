"""CLVP and CVVP (TorToiSe's ranking models) against the official implementation.

Golden values come from tests/fixtures/tortoise/make_clvp_fixtures.py, which runs the official
tortoise-tts 3.0.0 modules at tiny size with `randomized_state` weights; the same weights are
rebuilt here from our own state_dict (identical keys, so identical tensors).
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.fixtures.tortoise.golden import FIXTURES_DIR, KEYS_DIR
from tests.fixtures.tortoise.golden import max_abs_diff, randomized_state
from voxmith.engines.tortoise.clvp import CLVP, CLVPConfig
from voxmith.engines.tortoise.cvvp import CVVP, CVVPConfig

FIXTURES = FIXTURES_DIR
KEYS = KEYS_DIR
TOL = 1e-4
CASES = ("random", "pipeline")


def _load(name: str) -> dict:
    return torch.load(FIXTURES / f"{name}.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def clvp_golden():
    golden = _load("clvp")
    model = CLVP(CLVPConfig.tiny())
    model.load_state_dict(randomized_state(model.state_dict(), golden["seed"]), strict=True)
    return model.eval(), golden


@pytest.fixture(scope="module")
def cvvp_golden():
    golden = _load("cvvp")
    model = CVVP(CVVPConfig.tiny())
    model.load_state_dict(randomized_state(model.state_dict(), golden["seed"]), strict=True)
    return model.eval(), golden


@pytest.mark.parametrize("case", CASES)
def test_clvp_matches_official(clvp_golden, case):
    model, golden = clvp_golden
    ref = golden[case]
    with torch.no_grad():
        encoded = model.text_transformer(model.text_emb(ref["text"]))
        text_latent = model.text_latent(ref["text"])
        speech_latent = model.speech_latent(ref["codes"])
        scores = model.similarity(ref["text"], ref["codes"])
    assert scores.shape == ref["scores"].shape == (4,)
    assert max_abs_diff(encoded, ref["enc_text"]) <= TOL
    assert max_abs_diff(text_latent, ref["text_latent"]) <= TOL
    assert max_abs_diff(speech_latent, ref["speech_latent"]) <= TOL
    assert max_abs_diff(scores, ref["scores"]) <= TOL
    assert torch.equal(scores.argsort(), ref["scores"].argsort())


def test_clvp_pipeline_codes_are_fixed_up_rows():
    # The "pipeline" case must carry the padding the scorer sees: calm tokens and the 45,45,248 tail.
    codes = _load("clvp")["pipeline"]["codes"]
    assert (codes[:, -3:] == torch.tensor([45, 45, 248])).all()
    assert (codes[0, 9:-3] == 83).all()
    assert int(codes.max()) < 8192


def test_clvp_scores_include_padding(clvp_golden):
    # Official eval averages over every position, padding included: extra calm tokens change the score.
    model, golden = clvp_golden
    ref = golden["pipeline"]
    padded = torch.cat([ref["codes"], torch.full((4, 5), 83)], dim=1)
    with torch.no_grad():
        assert not torch.allclose(model.similarity(ref["text"], padded), ref["scores"])


@pytest.mark.parametrize("case", CASES)
def test_cvvp_matches_official(cvvp_golden, case):
    model, golden = cvvp_golden
    ref = golden[case]
    with torch.no_grad():
        cond_latent = model.conditioning_latent(ref["mel"])
        speech_latent = model.speech_latent(ref["codes"])
        scores = model.similarity(ref["mel"], ref["codes"])
    assert scores.shape == ref["scores"].shape == (4,)
    assert max_abs_diff(cond_latent, ref["cond_latent"]) <= TOL
    assert max_abs_diff(speech_latent, ref["speech_latent"]) <= TOL
    assert max_abs_diff(scores, ref["scores"]) <= TOL


@pytest.mark.parametrize(("model_cls", "config", "keys_file"), [
    (CLVP, CLVPConfig(), "keys_clvp.json"),
    (CVVP, CVVPConfig(), "keys_cvvp.json"),
    (CLVP, CLVPConfig.tiny(), "keys_clvp_tiny.json"),
    (CVVP, CVVPConfig.tiny(), "keys_cvvp_tiny.json"),
])
def test_state_dict_keys_and_shapes(model_cls, config, keys_file):
    path = KEYS / keys_file
    if not path.exists():
        pytest.skip(f"{path} not available")
    expected = json.loads(path.read_text())
    with torch.device("meta"):
        model = model_cls(config)
    ours = {key: list(tensor.shape) for key, tensor in model.state_dict().items()}
    assert sorted(ours) == sorted(expected)
    assert ours == expected


def test_official_state_dict_loads_strictly():
    # The official file's keys load strict: a state_dict with exactly those names/shapes round-trips.
    model = CLVP(CLVPConfig.tiny())
    state = randomized_state(model.state_dict(), 5)
    fresh = CLVP(CLVPConfig.tiny())
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.temperature, state["temperature"])
    # The rotary buffer is stored in the checkpoints and must equal the config-derived value.
    inv_freq = fresh.text_transformer.transformer.attn_layers.rotary_pos_emb.inv_freq
    assert torch.allclose(inv_freq, 1.0 / 10000 ** (torch.arange(0, 32, 2).float() / 32))
