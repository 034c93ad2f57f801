"""SoVITS training pass and multi-period discriminator against the official SynthesizerTrn.forward and
MultiPeriodDiscriminator (tiny generator, full-size discriminator), plus the official key layouts."""

from __future__ import annotations

import json

import pytest
import torch

from tests.fixtures.gpt_sovits.sovits_golden import FIXTURES_DIR, KEYS_DIR, max_abs_diff, randomized_state
from tests.test_gpt_sovits_sovits import meta_model, official_weights, tiny_config
from voxmith.engines.gpt_sovits import sovits_checkpoint as ckpt
from voxmith.engines.gpt_sovits import sovits_losses as L
from voxmith.engines.gpt_sovits.sovits_training import (MultiPeriodDiscriminator, discriminator_weight_norm_form,
                                                        train_forward)

TOL = 1e-4


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURES_DIR / "sovits_training.pt", weights_only=False)


@pytest.fixture(scope="module")
def sovits_fx():
    return torch.load(FIXTURES_DIR / "sovits.pt", weights_only=False)


@pytest.mark.parametrize("version", ["v2", "v2ProPlus"])
def test_train_forward_matches_official(fx, sovits_fx, version):
    case, inputs = sovits_fx[version], fx[version]["forward"]
    model = meta_model(tiny_config(case, version))
    model.load_state_dict(ckpt.fold_weight_norm(official_weights(case, version)), strict=True, assign=True)
    model.eval()                                    # the fixture ran in eval mode (no dropout)
    sv = inputs["sv_small"].repeat_interleave(128, dim=1) if inputs["sv_small"] is not None else None
    out = train_forward(model, inputs["ssl"], inputs["spec"], inputs["spec_lengths"], inputs["text"],
                        inputs["text_lengths"], segment_frames=inputs["segment_frames"], sv_embedding=sv,
                        generator=torch.Generator().manual_seed(inputs["forward_seed"]))
    assert torch.equal(out.slice_start, inputs["slice_start"])
    for name in ("z", "z_p", "m_p", "logs_p", "logs_q"):
        assert max_abs_diff(getattr(out, name), inputs[name]) <= TOL, name
    assert out.wave.shape == inputs["wave"].shape
    assert max_abs_diff(out.wave, inputs["wave"]) <= TOL
    kl = L.kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.spec_mask)
    assert max_abs_diff(kl, inputs["kl"]) <= TOL
    assert float(out.commitment) == 0.0


def test_train_forward_trains_the_decoder_not_the_quantiser(sovits_fx, fx):
    case, inputs = sovits_fx["v2"], fx["v2"]["forward"]
    model = meta_model(tiny_config(case, "v2"))
    model.load_state_dict(ckpt.fold_weight_norm(official_weights(case, "v2")), strict=True, assign=True)
    model.train()
    out = train_forward(model, inputs["ssl"], inputs["spec"], inputs["spec_lengths"], inputs["text"],
                        inputs["text_lengths"], segment_frames=inputs["segment_frames"],
                        generator=torch.Generator().manual_seed(1))
    (out.wave.pow(2).mean() + L.kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.spec_mask)).backward()
    assert model.dec.conv_pre.weight.grad is not None and model.enc_p.text_embedding.weight.grad is not None
    assert model.enc_q.pre.weight.grad is not None
    assert model.ssl_proj.weight.grad is None                      # frozen, as the official recipe


def test_train_forward_needs_posterior(sovits_fx):
    model = meta_model(tiny_config(sovits_fx["v2"], "v2", with_posterior=False))
    with pytest.raises(ValueError, match="with_posterior"):
        train_forward(model, None, None, None, None, None, 8)


@pytest.mark.parametrize("version", ["v2", "v2ProPlus"])
def test_discriminator_matches_official(fx, version):
    case = fx[version]["disc"]
    with torch.device("meta"):
        disc = MultiPeriodDiscriminator(version)
    official = randomized_state(discriminator_weight_norm_form(disc.state_dict()), case["seed"])
    disc.load_state_dict(ckpt.fold_weight_norm(official), strict=True, assign=True)
    with torch.no_grad():
        real, fake, real_maps, fake_maps = disc(case["real"], case["fake"])
    assert [[list(m.shape) for m in maps] for maps in real_maps] == case["map_shapes"]
    for ours, theirs in zip(real + fake, case["scores_real"] + case["scores_fake"]):
        assert max_abs_diff(ours, theirs) <= TOL
    loss_d, _, _ = L.discriminator_loss(real, fake)
    loss_g, _ = L.adversarial_generator_loss(fake)
    assert max_abs_diff(loss_d, case["loss_d"]) <= TOL
    assert max_abs_diff(loss_g, case["loss_g"]) <= TOL
    assert max_abs_diff(L.feature_matching_loss(real_maps, fake_maps), case["loss_fm"]) <= TOL


@pytest.mark.parametrize("version", ["v2", "v2ProPlus"])
def test_discriminator_key_layout_matches_official(version):
    official = json.loads((KEYS_DIR / f"keys_sovits_disc_{version}.json").read_text())
    with torch.device("meta"):
        disc = MultiPeriodDiscriminator(version)
    ours = {k: list(v.shape) for k, v in discriminator_weight_norm_form(disc.state_dict()).items()}
    assert ours == official


@pytest.fixture(scope="module")
def step_fx():
    return torch.load(FIXTURES_DIR / "sovits_step.pt", weights_only=False)


def _grad_summary(grad: torch.Tensor, text: torch.Tensor) -> dict:
    rows = grad[text[0]] if grad.shape[0] == 732 else grad   # as make_sovits_step_fixtures.grad_summary
    return {"norm": torch.linalg.vector_norm(grad), "head": rows.reshape(rows.shape[0], -1)[:16, :64]}


def _relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    return float((ours - theirs).abs().max() / theirs.abs().max().clamp_min(1e-12))


def test_v2proplus_fine_tuning_step_matches_official(step_fx):
    """One whole stage-1 step (s2_train.py) of v2ProPlus with speaker embeddings on real speech: the five
    losses, and the gradients the weighted sum sends to the generator and to the 7-period discriminator."""
    from voxmith.engines.gpt_sovits.sovits_finetune import LOSSES, STAGE, SoVITSTrainer

    fx = step_fx
    case = {"config": fx["config"], "seed": fx["gen_seed"]}
    generator = meta_model(tiny_config(case, fx["version"]))
    generator.load_state_dict(ckpt.fold_weight_norm(official_weights(case, fx["version"])), strict=True, assign=True)
    with torch.device("meta"):
        disc = MultiPeriodDiscriminator(fx["version"])
    disc.load_state_dict(ckpt.fold_weight_norm(randomized_state(discriminator_weight_norm_form(disc.state_dict()),
                                                                fx["disc_seed"])), strict=True, assign=True)
    trainer = SoVITSTrainer(generator, disc, segment_frames=fx["segment_frames"]).eval()   # the fixture: no dropout
    x = fx["inputs"]
    batch = {"wave": x["wave"], "spec": x["spec"], "spec_lengths": x["spec_lengths"], "hubert": x["ssl"],
             "phones": x["text"], "phone_lengths": x["text_lengths"], "seed": fx["step_seed"],
             "sv": x["sv_small"].repeat_interleave(128, dim=1)}
    losses = trainer(batch)
    for name, theirs in fx["losses"].items():
        if name != "commitment":
            assert _relative(losses[f"{STAGE}.{name}"].detach(), theirs) <= 1e-4, name
    weights = {term.key: term.weight for term in LOSSES}
    sum(weights[k] * v for k, v in losses.items()).backward()
    params = dict(generator.named_parameters())
    for name, theirs in fx["gen_grads"].items():
        ours = _grad_summary(params[name].grad, x["text"])
        assert _relative(ours["norm"], theirs["norm"]) <= 1e-3, name
        assert _relative(ours["head"], theirs["head"]) <= 1e-3, name
    params = dict(disc.named_parameters())
    for name, theirs in fx["disc_grads"].items():
        assert _relative(_grad_summary(params[name].grad, x["text"])["head"], theirs["head"]) <= 1e-3, name
