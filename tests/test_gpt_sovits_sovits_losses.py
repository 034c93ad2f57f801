"""SoVITS fine-tuning losses and the mel they use, against the official module/losses.py and mel_processing.py."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch

from tests.fixtures.gpt_sovits.sovits_golden import DEMO_CLIP, FIXTURES_DIR, max_abs_diff
from voxmith.engines.gpt_sovits import sovits_losses as L
from voxmith.engines.gpt_sovits.spectrogram import linear_spectrogram


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURES_DIR / "sovits_loss.pt", weights_only=False)


def test_gan_losses_match_official(fx):
    total, real, fake = L.discriminator_loss(fx["d_real"], fx["d_fake"])
    assert max_abs_diff(total, fx["loss_d"]) <= 1e-5
    assert [float(x) for x in real] == pytest.approx(fx["loss_d_real"], abs=1e-6)
    assert [float(x) for x in fake] == pytest.approx(fx["loss_d_fake"], abs=1e-6)
    gen, per = L.adversarial_generator_loss(fx["d_fake"])
    assert max_abs_diff(gen, fx["loss_g"]) <= 1e-5 and len(per) == 3
    assert max_abs_diff(L.feature_matching_loss(fx["f_real"], fx["f_fake"]), fx["loss_fm"]) <= 1e-5


def test_kl_loss_matches_official_with_padding(fx):
    kl = L.kl_loss(fx["z_p"], fx["logs_q"], fx["m_p"], fx["logs_p"], fx["mask"])
    assert max_abs_diff(kl, fx["loss_kl"]) <= 1e-5
    changed = fx["z_p"].clone()
    changed[1, :, 8] += 100.0                    # a padded frame: must not count
    assert max_abs_diff(L.kl_loss(changed, fx["logs_q"], fx["m_p"], fx["logs_p"], fx["mask"]), kl) == 0


def test_mels_match_official(fx):
    samples, _ = sf.read(str(DEMO_CLIP), dtype="float32")
    wave = torch.stack([torch.from_numpy(samples[a:b].copy()) for a, b in fx["spans"]])
    # Log mels down to log(1e-5): float32 FFT kernels differ by CPU (fixtures from an Intel Xeon with
    # AVX-512; an AMD EPYC gives 1.2e-4 on the quietest bins).
    tolerance = 5e-4
    assert max_abs_diff(L.mel_from_linear(linear_spectrogram(wave)), fx["mel_of_spec"]) <= tolerance
    mel = L.mel_of_waveform(wave)
    assert mel.shape == fx["mel_of_wave"].shape == (2, 128, 8)
    assert max_abs_diff(mel, fx["mel_of_wave"]) <= tolerance


def test_gradients_flow_where_the_recipe_expects():
    real = [[torch.randn(1, 3, requires_grad=True)]]
    fake = [[torch.randn(1, 3, requires_grad=True)]]
    L.feature_matching_loss(real, fake).backward()
    assert real[0][0].grad is None and fake[0][0].grad is not None      # real features are targets
    x = torch.randn(2, 4, requires_grad=True)
    q = torch.randn(2, 4, requires_grad=True)
    L.commitment_loss(x, q).backward()
    assert q.grad is None and x.grad is not None
    assert float(L.mel_l1(torch.ones(1, 2, 3), torch.zeros(1, 2, 3))) == 1.0
