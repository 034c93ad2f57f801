"""GPT-SoVITS feature paths against the official code: SoVITS spectrogram of a real clip (and the
reference loudness rule), HuBERT features through transformers (as the official CNHubert wrapper is
used at inference), Kaldi fbank and the ERes2NetV2 embedding of v2Pro/v2ProPlus (tiny size)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.fixtures.gpt_sovits.sovits_golden import DEMO_CLIP, FIXTURES_DIR, max_abs_diff, randomized_state
from voxmith.engines.gpt_sovits import hubert as hubert_mod
from voxmith.engines.gpt_sovits import spectrogram as spec_mod
from voxmith.engines.gpt_sovits.speaker_verification import (ERes2NetV2, ERes2NetV2Config, SpeakerVerifier,
                                                             kaldi_fbank)
from voxmith.errors import AudioError, VoxmithError


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURES_DIR / "features.pt", weights_only=False)


@pytest.fixture(scope="module")
def clip():
    samples, _ = sf.read(str(DEMO_CLIP), dtype="float32")
    return torch.from_numpy(samples)


def _span(clip, span):
    return clip[span[0]:span[1]].clone()


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return max_abs_diff(a, b) / float(b.abs().max())


# float32 FFT rounding: the same call gave 0 alone and 1.9e-5 once in a full random-order run (after
# other modules' work in the process); a wrong rule (loudness, padding, window) is off by far more.
SPECTROGRAM_TOLERANCE = 5e-5


def test_spectrogram_of_real_clip_matches_official(fx, clip):
    piece = _span(clip, fx["spec_span"])
    spec = spec_mod.reference_spectrogram(piece)
    assert spec.shape == fx["spec"].shape == (1, 1025, piece.shape[0] // 640)
    assert _relative(spec, fx["spec"]) <= SPECTROGRAM_TOLERANCE
    spec_np = spec_mod.reference_spectrogram(piece.numpy())          # numpy input, same result
    assert torch.equal(spec_np, spec)


def test_loud_reference_rule_matches_official(fx, clip):
    loud = _span(clip, fx["spec_span"]) * 3.0
    assert float(loud.abs().max()) > 1
    assert _relative(spec_mod.reference_spectrogram(loud), fx["spec_loud"]) <= SPECTROGRAM_TOLERANCE


def test_reference_loudness_rule_scripted():
    quiet = torch.tensor([0.5, -0.9])
    assert torch.equal(spec_mod.reference_loudness(quiet), quiet)       # never amplified
    assert torch.allclose(spec_mod.reference_loudness(torch.tensor([1.5, -0.3])), torch.tensor([1.0, -0.2]))
    # above a peak of 2 the divisor stays 2: the result may still exceed 1, as the official code allows
    assert torch.allclose(spec_mod.reference_loudness(torch.tensor([3.0, 1.0])), torch.tensor([1.5, 0.5]))
    with pytest.raises(ValueError, match="mono"):
        spec_mod.reference_spectrogram(torch.zeros(2, 32000))
    with pytest.raises(ValueError, match="too short"):
        spec_mod.linear_spectrogram(torch.zeros(100))


def test_training_audio_mixes_peak_normalised_and_original():
    x = np.array([0.1, -0.4, 0.2], dtype=np.float32)
    out = spec_mod.training_audio(x)
    assert np.allclose(out, x / 0.4 * 0.475 + 0.5 * x)
    assert np.isclose(np.abs(out).max(), 0.475 + 0.2)
    assert np.array_equal(spec_mod.training_audio(np.zeros(4, np.float32)), np.zeros(4, np.float32))


def _tiny_hubert_folder(fx, tmp_path):
    from transformers import HubertConfig, HubertModel

    model = HubertModel(HubertConfig(**fx["hubert_config"]))
    assert sorted(model.state_dict()) == fx["hubert_keys"]   # same key names as the reference transformers 4.x
    model.load_state_dict(randomized_state(model.state_dict(), fx["hubert_seed"]), strict=True)
    model.save_pretrained(tmp_path)
    return model


def test_hubert_reference_features_match_official_wrapper(fx, clip, tmp_path):
    _tiny_hubert_folder(fx, tmp_path)
    hubert = hubert_mod.HubertFeatures.load(tmp_path)
    wav = _span(clip, fx["hubert_span"])
    feats = hubert.reference_features(wav, check_length=False)
    assert feats.shape == fx["hubert_reference"].shape
    assert feats.shape[2] == (wav.shape[0] + hubert_mod.REFERENCE_TAIL_ZEROS) // 320 - 1   # 50 Hz frames
    assert _relative(feats, fx["hubert_reference"]) <= 1e-4
    plain = hubert.features(wav.unsqueeze(0))
    assert _relative(plain, fx["hubert_plain"]) <= 1e-4
    assert plain.shape[2] < feats.shape[2]                    # the zeros add frames


def test_hubert_loads_old_weight_norm_key_names(fx, clip, tmp_path):
    """chinese-hubert-base's pytorch_model.bin predates torch parametrizations (weight_g / weight_v)."""
    model = _tiny_hubert_folder(fx, tmp_path)
    state = {k.replace("parametrizations.weight.original0", "weight_g")
              .replace("parametrizations.weight.original1", "weight_v"): v for k, v in model.state_dict().items()}
    for name in ("model.safetensors", "pytorch_model.bin"):
        (tmp_path / name).unlink(missing_ok=True)
    torch.save(state, tmp_path / "pytorch_model.bin")
    feats = hubert_mod.HubertFeatures.load(tmp_path).reference_features(_span(clip, fx["hubert_span"]),
                                                                       check_length=False)
    assert _relative(feats, fx["hubert_reference"]) <= 1e-4


def test_reference_length_rule():
    hubert_mod.check_reference_length(48000)
    hubert_mod.check_reference_length(160000)
    for n in (47999, 160001):
        with pytest.raises(AudioError, match="3 to 10 s"):
            hubert_mod.check_reference_length(n)


# Log-energies of magnitude ~10: float32 FFT kernels differ by CPU (the fixtures were made on an Intel
# Xeon with AVX-512; an AMD EPYC gives 1.3e-3 on the quietest bins), a wrong window or filter bank by > 0.1.
FBANK_TOLERANCE = 3e-3


def test_kaldi_fbank_matches_official(fx, clip):
    for (a, b), expected in zip(fx["sv_spans"], fx["fbank"]):
        ours = kaldi_fbank(clip[a:b].clone())
        assert ours.shape == expected.shape == (98, 80)
        assert max_abs_diff(ours, expected) <= FBANK_TOLERANCE
    odd = kaldi_fbank(_span(clip, fx["fbank_odd_span"]))
    assert odd.shape == fx["fbank_odd"].shape
    assert max_abs_diff(odd, fx["fbank_odd"]) <= FBANK_TOLERANCE
    silent = kaldi_fbank(torch.zeros(800))
    assert torch.isfinite(silent).all()                        # log floor, no -inf


def _tiny_sv(fx) -> SpeakerVerifier:
    c = fx["sv_config"]
    cfg = ERes2NetV2Config(num_blocks=tuple(c["num_blocks"]), m_channels=c["m_channels"], base_width=c["base_width"],
                           scale=c["scale"], expansion=c["expansion"])
    model = ERes2NetV2(cfg)
    model.load_state_dict(randomized_state(model.state_dict(), fx["sv_seed"]), strict=True)
    return SpeakerVerifier(model)


def test_eres2netv2_embedding_matches_official(fx, clip):
    verifier = _tiny_sv(fx)
    wavs = torch.stack([clip[a:b] for a, b in fx["sv_spans"]])
    emb = verifier.embed(wavs)
    assert emb.shape == fx["sv_embedding"].shape == (2, verifier.model.config.pooled_dim)
    assert _relative(emb, fx["sv_embedding"]) <= 1e-4
    single = verifier.embed(wavs[0])
    assert _relative(single, fx["sv_embedding"][:1]) <= 1e-4


def test_full_size_embedding_width():
    assert ERes2NetV2Config().pooled_dim == 20480


def test_speaker_verifier_refuses_bad_files(tmp_path):
    junk = tmp_path / "sv.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(VoxmithError, match="Cannot read the speaker-verification model"):
        SpeakerVerifier.load(junk)
    other = tmp_path / "other.ckpt"
    torch.save({"x": torch.zeros(1)}, other)
    with pytest.raises(VoxmithError, match="not the ERes2NetV2"):
        SpeakerVerifier.load(other)


def test_reference_to_prompt_codes_matches_official(clip, tmp_path):
    """The whole official _set_prompt_semantic path: 16 kHz reference -> HuBERT (768 wide, random) -> codes."""
    from transformers import HubertConfig, HubertModel

    from tests.test_gpt_sovits_sovits import meta_model, official_weights, tiny_config
    from voxmith.engines.gpt_sovits import sovits_checkpoint as ckpt

    fx = torch.load(FIXTURES_DIR / "prompt_codes.pt", weights_only=False)
    model = HubertModel(HubertConfig(**fx["hubert_config"]))
    model.load_state_dict(randomized_state(model.state_dict(), fx["hubert_seed"], std=fx["hubert_std"]))
    model.save_pretrained(tmp_path)
    sovits_fx = torch.load(FIXTURES_DIR / "sovits.pt", weights_only=False)["v2"]
    sovits = meta_model(tiny_config(sovits_fx, "v2", with_posterior=False))
    weights = {k: v for k, v in ckpt.fold_weight_norm(official_weights(sovits_fx, "v2")).items()
               if not k.startswith("enc_q.")}
    sovits.load_state_dict(weights, strict=True, assign=True)
    features = hubert_mod.HubertFeatures.load(tmp_path).reference_features(_span(clip, fx["span"]))
    codes = sovits.eval().extract_codes(features)[0]
    assert torch.equal(codes, fx["codes"])
    assert len(set(codes.tolist())) > 10
