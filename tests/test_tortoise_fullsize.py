"""Smoke test of every TorToiSe model at the OFFICIAL size (random weights, real memory, CPU).

The golden tests check the maths at tiny size and the key/shape tests check the official layout on the
meta device; this one makes sure the full-size modules actually run: each model is built with its
default (official) config, its weights are redrawn in place (the official init zeroes some layers,
which would let a broken block pass unnoticed), one short step is run, and the model is freed before
the next one, so peak memory stays around one model (the AR: ~1.7 GB of float32 weights).

Marked `slow` (about a minute or two on 2 CPU cores): `pytest -m slow tests/test_tortoise_fullsize.py`.
"""

from __future__ import annotations

import contextlib
import gc
import math

import pytest
import torch

from voxmith.engines.tortoise.autoregressive import UnifiedVoice, UnifiedVoiceConfig
from voxmith.engines.tortoise.clvp import CLVP, CLVPConfig
from voxmith.engines.tortoise.cvvp import CVVP, CVVPConfig
from voxmith.engines.tortoise.diffusion import DiffusionConfig, DiffusionTts
from voxmith.engines.tortoise.diffusion_sampler import SpacedDiffusionSampler
from voxmith.engines.tortoise.random_latents import RandomLatentConfig, RandomLatentConverter
from voxmith.engines.tortoise.vocoder import UnivNetConfig, UnivNetGenerator

pytestmark = pytest.mark.slow

SAMPLING = dict(do_sample=True, temperature=0.8, top_p=0.8, repetition_penalty=2.0, length_penalty=1.0)


# Drawing hundreds of millions of normal numbers one by one costs seconds of CPU per model (the
# generator is serial): every parameter is filled from one bank of N(0, 1) draws instead, from an
# offset drawn per parameter. The bank's length is prime, so no two rows of a weight repeat each other.
BANK = 1_000_003
# nn.init functions the modules' constructors call; redrawn by randomize_ anyway, so skipped.
INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                  "xavier_normal_", "orthogonal_", "zeros_", "ones_", "constant_")


@contextlib.contextmanager
def no_default_init():
    """Build a model without its default initialisation (randomize_ overwrites every parameter, so
    the model is the same as with it; the official init of ~420M parameters costs seconds of CPU)."""
    with pytest.MonkeyPatch.context() as patch:
        for name in INIT_FUNCTIONS:
            patch.setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield


def build(cls, config):
    with no_default_init():
        return cls(config)


def _fill_(flat: torch.Tensor, bank: torch.Tensor, start: int) -> None:
    done, position = 0, start
    while done < flat.numel():
        take = min(flat.numel() - done, bank.numel() - position)
        flat[done:done + take].copy_(bank[position:position + take])
        done, position = done + take, 0


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int, std: float = 0.02) -> torch.nn.Module:
    """Redraw every floating parameter in place (no second copy of the weights): norm gains near 1,
    everything else N(0, std). std is smaller than the golden tests' 0.05 so 30 layers stay finite."""
    generator = torch.Generator().manual_seed(seed)
    bank = torch.randn(BANK, generator=generator)
    for name, param in sorted(model.named_parameters()):
        _fill_(param.view(-1), bank, int(torch.randint(BANK, (1,), generator=generator)))
        if param.dim() == 1 and ("norm" in name or "ln_" in name or name.endswith((".g", ".gamma"))):
            param.mul_(0.1).add_(1.0)
        else:
            param.mul_(std)
    return model.eval()


def check(tensor: torch.Tensor, shape: tuple) -> None:
    assert tuple(tensor.shape) == shape
    assert torch.isfinite(tensor).all()


@pytest.fixture(autouse=True)
def free_memory():
    """Each test builds one full-size model; collect it before the next one is built."""
    yield
    gc.collect()


def test_autoregressive_full_size():
    config = UnifiedVoiceConfig()
    model = randomize_(build(UnifiedVoice, config), 1)
    assert sum(p.numel() for p in model.parameters()) > 400e6  # really the official 421.5M model
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        cond = model.get_conditioning(torch.randn(1, 2, 80, 64, generator=g))
        check(cond, (1, config.model_dim))
        text = torch.cat([torch.randint(1, 255, (1, 12), generator=g), torch.zeros(1, 1, dtype=torch.long)], 1)
        torch.manual_seed(0)
        codes = model.inference_speech(cond, text, num_return_sequences=2, max_generate_length=2,
                                       official_positions=True, **SAMPLING)
        assert codes.shape[0] == 2 and 1 <= codes.shape[1] <= 2
        assert int(codes.min()) >= 0 and int(codes.max()) < config.number_mel_codes
        mel_codes = torch.randint(0, 8192, (1, 10), generator=g)
        latents = model(cond, text, torch.tensor([text.shape[1]]), mel_codes, torch.tensor([10 * 1024]),
                        return_latent=True, clip_inputs=False)
        check(latents, (1, 10, config.model_dim))


def test_clvp_full_size():
    model = randomize_(build(CLVP, CLVPConfig()), 2)
    g = torch.Generator().manual_seed(1)
    text = torch.randint(1, 255, (2, 12), generator=g)
    codes = torch.randint(0, 8192, (2, 40), generator=g)
    with torch.no_grad():
        check(model(text, codes), (2,))


def test_cvvp_full_size():
    model = randomize_(build(CVVP, CVVPConfig()), 3)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        check(model(torch.randn(2, 80, 64, generator=g), torch.randint(0, 8192, (2, 40), generator=g)), (2,))


def test_diffusion_full_size():
    config = DiffusionConfig()
    model = randomize_(build(DiffusionTts, config), 4)
    g = torch.Generator().manual_seed(3)
    frames = 8 * 4 * 24000 // 22050  # 8 AR latents -> 34 frames, as api.py sizes the output
    with torch.no_grad():
        voice = model.get_conditioning(torch.randn(1, 2, 100, 64, generator=g))
        check(voice, (1, 2 * config.model_channels))
        aligned = model.timestep_independent(torch.randn(1, 8, config.in_latent_channels, generator=g), voice, frames)
        check(aligned, (1, config.model_channels, frames))
        # One official p_sample step with guidance: two forwards (conditional and conditioning-free).
        sampler = SpacedDiffusionSampler(steps=30, cond_free=True, cond_free_k=2.0)
        x = torch.randn(1, config.in_channels, frames, generator=g)
        mean, log_variance, pred_x0 = sampler.model_prediction(
            model, x, 15, {"precomputed_aligned_embeddings": aligned})
        for tensor in (mean, log_variance, pred_x0):
            check(tensor, tuple(x.shape))


def test_vocoder_full_size():
    model = randomize_(build(UnivNetGenerator, UnivNetConfig()), 5)
    mel = torch.randn(1, 100, 8, generator=torch.Generator().manual_seed(4)) * 2 - 5
    audio = model.inference(mel, generator=torch.Generator().manual_seed(5))
    check(audio, (1, 1, 8 * 256))
    assert float(audio.abs().max()) <= 1.0


@pytest.mark.parametrize("config", [RandomLatentConfig.auto(), RandomLatentConfig.diffuser()], ids=["auto", "diffuser"])
def test_random_latents_full_size(config):
    model = randomize_(build(RandomLatentConverter, config), 6)
    with torch.no_grad():
        latent = model.convert(torch.randn(1, config.channels, generator=torch.Generator().manual_seed(6)))
    check(latent, (1, config.channels))
    assert math.isfinite(float(latent.abs().sum()))
