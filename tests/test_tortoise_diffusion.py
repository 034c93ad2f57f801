"""Diffusion decoder and sampler: golden outputs vs official tortoise-tts 3.0.0 (tiny model) and key sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.fixtures.tortoise.golden import FIXTURES_DIR, KEYS_DIR
from tests.fixtures.tortoise.golden import max_abs_diff, randomized_state
from tests.fixtures.tortoise.make_diffusion_fixtures import ORACLE_RUNS, OracleDenoiser
from voxmith.engines.tortoise.diffusion import DiffusionConfig, DiffusionTts, timestep_embedding
from voxmith.engines.tortoise.diffusion_sampler import (SpacedDiffusionSampler, load_discrete_vocoder_diffuser,
                                                        space_timesteps)

FIXTURES = FIXTURES_DIR
KEYS = KEYS_DIR
TOL = 1e-4


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURES / "diffusion.pt", weights_only=False)


@pytest.fixture(scope="module")
def model(fx):
    net = DiffusionTts(DiffusionConfig.tiny())
    net.load_state_dict(randomized_state(net.state_dict(), fx["seed"]), strict=True)
    return net.eval()


def test_get_conditioning(fx, model):
    with torch.no_grad():
        cond = model.get_conditioning(fx["cond_mels"])
        single = model.get_conditioning(fx["cond_mels"][:, 0])
    assert cond.shape == (1, 128)
    assert max_abs_diff(cond, fx["conditioning"]) <= TOL
    assert max_abs_diff(single, fx["conditioning_single"]) <= TOL


def test_timestep_independent(fx, model):
    with torch.no_grad():
        aligned = model.timestep_independent(fx["latents"], fx["conditioning"], fx["out_len"])
        from_codes = model.timestep_independent(fx["codes"], fx["conditioning"], 20)
    assert aligned.shape == (1, 64, fx["out_len"])
    assert max_abs_diff(aligned, fx["aligned"]) <= TOL
    assert max_abs_diff(from_codes, fx["aligned_codes"]) <= TOL


def test_forward(fx, model):
    x, ts = fx["x"], fx["timesteps"]
    with torch.no_grad():
        out_latents = model(x, ts, aligned_conditioning=fx["latents"].repeat(2, 1, 1),
                            conditioning_latent=fx["conditioning"].repeat(2, 1))
        out_pre = model(x[:1], ts[:1], precomputed_aligned_embeddings=fx["aligned"])
        out_uncond = model(x, ts, precomputed_aligned_embeddings=fx["aligned"].repeat(2, 1, 1),
                           conditioning_free=True)
    assert out_latents.shape == (2, 200, fx["out_len"])
    assert max_abs_diff(out_latents, fx["forward_latents"]) <= TOL
    assert max_abs_diff(out_pre, fx["forward_precomputed"]) <= TOL
    assert max_abs_diff(out_uncond, fx["forward_uncond"]) <= TOL


@pytest.mark.parametrize("name,steps,cond_free,k", [("p_cf", 4, True, 2.0), ("p_plain", 3, False, 1.0)])
def test_p_sample_loop_and_rng_order(fx, model, name, steps, cond_free, k):
    sampler = load_discrete_vocoder_diffuser(steps, cond_free=cond_free, cond_free_k=k)
    torch.manual_seed(fx["loop_seed"])
    noise = torch.randn(1, 100, fx["out_len"])
    assert torch.equal(noise, fx[f"{name}_noise"])
    out = sampler.p_sample_loop(model, noise, {"precomputed_aligned_embeddings": fx["aligned"]})
    assert max_abs_diff(out, fx[f"{name}_out"]) <= TOL
    assert torch.equal(torch.randn(4), fx[f"{name}_after"])   # one randn_like per step, incl. the last


@pytest.mark.parametrize("name,steps,cond_free,k", ORACLE_RUNS)
def test_p_sample_loop_oracle(fx, name, steps, cond_free, k):
    """Unsaturated sampler math (x0 stays inside the clamp) vs official, with RNG draws per step."""
    sampler = load_discrete_vocoder_diffuser(steps, cond_free=cond_free, cond_free_k=k)
    torch.manual_seed(fx["loop_seed"])
    out = sampler.p_sample_loop(OracleDenoiser(), torch.randn(1, 100, fx["out_len"]))
    assert max_abs_diff(out, fx[f"{name}_out"]) <= 1e-5


def test_ddim_oracle(fx):
    sampler = load_discrete_vocoder_diffuser(6, cond_free=True, cond_free_k=2.0)
    out = sampler.ddim_sample_loop(OracleDenoiser(), fx["p_cf_noise"])
    assert max_abs_diff(out, fx["oracle_ddim_out"]) <= 1e-5


def test_p_sample_loop_with_generator_is_reproducible(fx, model):
    sampler = load_discrete_vocoder_diffuser(2, cond_free=True, cond_free_k=2.0)
    kwargs = {"precomputed_aligned_embeddings": fx["aligned"]}
    runs = [sampler.p_sample_loop(model, fx["p_cf_noise"], kwargs, generator=torch.Generator().manual_seed(3))
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_ddim_matches_official_and_is_deterministic(fx, model):
    sampler = load_discrete_vocoder_diffuser(4, cond_free=True, cond_free_k=2.0)
    kwargs = {"precomputed_aligned_embeddings": fx["aligned"]}
    torch.manual_seed(0)
    out = sampler.ddim_sample_loop(model, fx["p_cf_noise"], kwargs)
    after = torch.randn(2)
    torch.manual_seed(0)
    assert torch.equal(after, torch.randn(2))                    # DDIM draws no random numbers
    assert max_abs_diff(out, fx["ddim_out"]) <= TOL


def test_timestep_maps_and_tables(fx):
    for n, expected in fx["timestep_maps"].items():
        assert space_timesteps(4000, n) == expected
    assert space_timesteps(4000, 5) == [0, 1000, 2000, 2999, 3999]   # half-to-even rounding
    for n, tables in fx["tables"].items():
        sampler = SpacedDiffusionSampler(steps=n)
        np.testing.assert_array_equal(sampler.betas, tables["betas"].numpy())
        for name, values in tables.items():
            if name != "betas":
                np.testing.assert_array_equal(sampler.tables[name], values.numpy(), err_msg=name)


def test_cond_free_ramp():
    sampler = SpacedDiffusionSampler(steps=4, cond_free_k=2.0)
    assert [sampler.cond_free_strength(i) for i in (3, 2, 1, 0)] == [0.5, 1.0, 1.5, 2.0]


def test_ramped_guidance_needs_batch_one(model, fx):
    sampler = load_discrete_vocoder_diffuser(2, cond_free=True)
    with pytest.raises(ValueError):
        sampler.p_sample_loop(model, torch.zeros(2, 100, 8),
                              {"precomputed_aligned_embeddings": torch.zeros(2, 64, 8)})


def test_timestep_embedding_cos_first():
    emb = timestep_embedding(torch.tensor([0, 7]), 8)
    assert torch.equal(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert emb.shape == (2, 8)


@pytest.mark.parametrize("tiny", [False, True])
def test_keys_and_shapes(tiny):
    expected = json.loads((KEYS / f"keys_diffusion_decoder{'_tiny' if tiny else ''}.json").read_text())
    with torch.device("meta"):
        net = DiffusionTts(DiffusionConfig.tiny() if tiny else DiffusionConfig())
    ours = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert ours == expected
    if not tiny:
        assert sum(p.numel() for p in net.parameters()) == 292_334_380
