"""UnifiedVoice (TorToiSe's autoregressive model) and RandomLatentConverter against the official code.

Golden values come from tests/fixtures/tortoise/make_autoregressive_fixtures.py, which runs the
official tortoise-tts 3.0.0 modules (transformers 4.31.0) at tiny size with `randomized_state`
weights; the same weights are rebuilt here from our own state_dict (identical keys).
"""

from __future__ import annotations

import json

import pytest
import torch

from tests.fixtures.tortoise.golden import FIXTURES_DIR, KEYS_DIR
from tests.fixtures.tortoise.golden import max_abs_diff, randomized_state
from voxmith.engines.tortoise.autoregressive import UnifiedVoice, UnifiedVoiceConfig
from voxmith.engines.tortoise.blocks import AttentionBlock, group_count
from voxmith.engines.tortoise.random_latents import RandomLatentConfig, RandomLatentConverter

FIXTURES = FIXTURES_DIR
KEYS = KEYS_DIR
TOL = 1e-4
SAMPLE_CASES = ("pair", "quad", "two_prompts", "long")


@pytest.fixture(scope="module")
def golden():
    return torch.load(FIXTURES / "autoregressive.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model(golden):
    ours = UnifiedVoice(UnifiedVoiceConfig.tiny())
    state = randomized_state(ours.state_dict(), golden["seed"])
    state["mel_head.bias"][8193] += golden["stop_boost"]  # as the fixture script does
    ours.load_state_dict(state, strict=True)
    return ours.eval()


def test_get_conditioning(model, golden):
    with torch.no_grad():
        assert max_abs_diff(model.get_conditioning(golden["cond_mels"]), golden["cond_latent"]) <= TOL
        single = model.get_conditioning(golden["cond_mels"][:, 0])
    assert max_abs_diff(single, golden["cond_single_clip"]) <= TOL


def test_latent_pass(model, golden):
    codes = golden["latent_codes"].clone()
    with torch.no_grad():
        got = model(golden["cond_latent"], golden["latent_text"], torch.tensor([10, 10]), codes,
                    golden["latent_wav_lengths"], return_latent=True, clip_inputs=False)
    assert got.shape == golden["latents"].shape == (2, 30, 64)
    assert max_abs_diff(got, golden["latents"]) <= TOL
    assert torch.equal(codes, golden["latent_codes"])  # unlike the official code, inputs are not mutated


@pytest.mark.parametrize("case", SAMPLE_CASES)
@pytest.mark.parametrize("official_positions", [True, False])
def test_sampled_codes(model, golden, case, official_positions):
    """official_positions=True must equal the official kv-cache run; the default the no-cache run."""
    args = golden[f"sample_{case}_args"]
    torch.manual_seed(args["seed"])
    codes = model.inference_speech(golden[f"sample_{case}_cond"], golden[f"sample_{case}_text"],
                                   num_return_sequences=args["num_return_sequences"],
                                   max_generate_length=args["max_generate_length"],
                                   official_positions=official_positions, **golden[f"sample_{case}_kwargs"])
    expected = golden[f"sample_{case}_{'kv' if official_positions else 'nokv'}"]
    assert codes.tolist() == expected.tolist()


def test_sampling_advances_rng_like_official(model, golden):
    """After sampling, the global torch RNG is where the official loop leaves it (one multinomial
    over the whole batch per step), so later draws (diffusion noise) line up too."""
    args = golden["sample_quad_args"]
    torch.manual_seed(args["seed"])
    codes = model.inference_speech(golden["sample_quad_cond"], golden["sample_quad_text"],
                                   num_return_sequences=4, max_generate_length=args["max_generate_length"],
                                   official_positions=True, **golden["sample_quad_kwargs"])
    after = torch.rand(4)
    torch.manual_seed(args["seed"])
    for _ in range(codes.shape[1]):
        torch.multinomial(torch.full((4, 8194), 1.0 / 8194), 1)
    assert torch.equal(after, torch.rand(4))


def test_random_latent_converter(golden):
    rlg = RandomLatentConverter(RandomLatentConfig.tiny()).eval()
    rlg.load_state_dict(randomized_state(rlg.state_dict(), golden["seed"] + 2), strict=True)
    with torch.no_grad():
        assert max_abs_diff(rlg.convert(golden["rlg_noise"]), golden["rlg_out"]) <= TOL
        torch.manual_seed(5)
        assert max_abs_diff(rlg(torch.tensor([0.0])), golden["rlg_forward_seed5"]) <= TOL


def test_random_latent_converter_init_consumes_rng_like_official(golden):
    torch.manual_seed(3)
    fresh = RandomLatentConverter(RandomLatentConfig.tiny())
    sums = {k: v.double().sum() for k, v in fresh.state_dict().items()}
    assert sums.keys() == golden["rlg_init_sums"].keys()
    assert all(float(sums[k]) == float(golden["rlg_init_sums"][k]) for k in sums)
    assert torch.equal(torch.randn(4), golden["rlg_init_next"])


def _shapes(module: torch.nn.Module) -> dict:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def test_official_keys_and_shapes():
    with torch.device("meta"):
        ar = UnifiedVoice()
        rlg_auto = RandomLatentConverter(RandomLatentConfig.auto())
        rlg_diffuser = RandomLatentConverter(RandomLatentConfig.diffuser())
    assert _shapes(ar) == json.loads((KEYS / "keys_autoregressive.json").read_text())
    assert _shapes(rlg_auto) == json.loads((KEYS / "keys_rlg_auto.json").read_text())
    assert _shapes(rlg_diffuser) == json.loads((KEYS / "keys_rlg_diffuser.json").read_text())
    assert _shapes(UnifiedVoice(UnifiedVoiceConfig.tiny())) == json.loads(
        (KEYS / "keys_autoregressive_tiny.json").read_text())


def test_loads_checkpoint_with_gpt2_mask_buffers():
    """The real autoregressive.pth also holds gpt.h.N.attn.bias / attn.masked_bias (470 keys at full
    size); a strict load must accept and ignore them."""
    ours = UnifiedVoice(UnifiedVoiceConfig.tiny())
    state = randomized_state(ours.state_dict(), 1)
    n_pos = 1012
    for i in range(ours.config.layers):
        state[f"gpt.h.{i}.attn.bias"] = torch.ones(n_pos, n_pos, dtype=torch.uint8).tril().view(1, 1, n_pos, n_pos)
        state[f"gpt.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    result = ours.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert "gpt.h.0.attn.bias" in state  # the caller's dict is left alone
    assert torch.equal(ours.state_dict()["gpt.h.1.mlp.c_fc.weight"], state["gpt.h.1.mlp.c_fc.weight"])
    assert not any(k.endswith((".attn.bias", ".attn.masked_bias")) for k in ours.state_dict())


def test_full_size_470_key_checkpoint_loads_strict():
    """Full-size on meta: the 410 module keys plus 30 attn.bias and 30 attn.masked_bias buffers."""
    with torch.device("meta"):
        ar = UnifiedVoice()
    state = {k: torch.empty(v.shape, device="meta") for k, v in ar.state_dict().items()}
    for i in range(30):
        state[f"gpt.h.{i}.attn.bias"] = torch.empty(1, 1, 1012, 1012, dtype=torch.bool, device="meta")
        state[f"gpt.h.{i}.attn.masked_bias"] = torch.empty((), device="meta")
    assert len(state) == 470
    result = ar.load_state_dict(state, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_unknown_keys_still_rejected():
    ours = UnifiedVoice(UnifiedVoiceConfig.tiny())
    state = dict(ours.state_dict())
    state["gpt.h.0.attn.surprise"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="surprise"):
        ours.load_state_dict(state, strict=True)


def test_attention_block_relative_position_bias(golden):
    block = AttentionBlock(64, 4, relative_pos_embeddings=True).eval()
    block.load_state_dict(randomized_state(block.state_dict(), golden["seed"] + 3), strict=True)
    with torch.no_grad():
        assert max_abs_diff(block(golden["attn_x"]), golden["attn_relpos"]) <= TOL
        assert max_abs_diff(block(golden["attn_x"], golden["attn_mask"]), golden["attn_relpos_masked"]) <= TOL


def test_attention_block_group_rule_and_heads():
    assert [group_count(c) for c in (16, 64, 80, 512, 1024, 2048)] == [8, 16, 16, 32, 32, 32]
    with pytest.raises(ValueError):
        group_count(6)
    block = AttentionBlock(64, num_heads=4, relative_pos_embeddings=True)
    assert block.relative_pos_embeddings.relative_attention_bias.weight.shape == (32, 4)
    assert AttentionBlock(64, num_head_channels=16).num_heads == 4
