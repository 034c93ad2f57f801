"""voxmith's TorToiSe text and audio front ends against the official implementation's outputs.

The golden values in tests/fixtures/tortoise/frontend.pt come from the official tortoise-tts 3.0.0
code (torchaudio 2.11, librosa, scipy); regenerate them with make_frontend_fixtures.py in the
reference venv.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from voxmith.engines.tortoise import audio as A
from voxmith.engines.tortoise.tokenizer import (MAX_TEXT_TOKENS, TextTooLongError, TortoiseTokenizer,
                                                 english_clean)

FIXTURE = Path(__file__).parent / "fixtures" / "tortoise" / "frontend.pt"
TOL = 1e-4


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURE)


@pytest.fixture(scope="module")
def clip(fx):
    return fx["clip_int16"].float() / 32768  # (1, 33075) at 22.05 kHz


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a.double() - b.double()).abs().max())


def synthetic_signal(n: int, sample_rate: int, amplitude: float, seed: int) -> torch.Tensor:
    """Same signal as make_frontend_fixtures.synthetic_signal."""
    t = torch.arange(n, dtype=torch.float64) / sample_rate
    chirp = torch.sin(2 * math.pi * (100.0 * t + 900.0 * t * t))
    noise = torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (amplitude * (0.7 * chirp + 0.3 * noise)).to(torch.float32)[None]


# ---------------------------------------------------------------------------------------- text


def test_token_ids_match_official(fx):
    tok = TortoiseTokenizer()
    for sentence, cleaned, ids in zip(fx["sentences"], fx["cleaned"], fx["ids"]):
        assert english_clean(sentence) == cleaned, sentence
        assert tok.encode(sentence) == ids, sentence


def test_basic_cleaner_and_decode_match_official(fx):
    basic = TortoiseTokenizer(cleaner="basic")
    assert [basic.encode(s) for s in fx["basic_sentences"]] == fx["basic_ids"]
    assert TortoiseTokenizer().decode(fx["ids"][0]) == fx["decoded0"]
    assert TortoiseTokenizer().decode(torch.tensor(fx["ids"][0])) == fx["decoded0"]


def test_tts_row_has_trailing_stop_and_length_limit():
    tok = TortoiseTokenizer()
    row = tok.text_tokens_for_tts("Hello there.")
    ids = tok.encode("Hello there.")
    assert row.dtype == torch.int32 and row.shape == (1, len(ids) + 1)
    assert row[0, :-1].tolist() == ids and row[0, -1].item() == 0
    # "a" and [SPACE] are one id each: 398 ids (+ pad = 399) is the longest accepted row.
    at_limit = " ".join(["a"] * 199) + " "
    assert len(tok.encode(at_limit)) == MAX_TEXT_TOKENS - 2
    assert tok.text_tokens_for_tts(at_limit).shape == (1, MAX_TEXT_TOKENS - 1)
    with pytest.raises(TextTooLongError, match="too long"):
        tok.text_tokens_for_tts(" ".join(["a"] * 200))
    with pytest.raises(ValueError):
        TortoiseTokenizer(cleaner="nope")


# --------------------------------------------------------------------------------------- audio


def test_mel_norms_data_file_matches_official(fx):
    assert torch.equal(A.mel_norms(), fx["mel_norms"])


def test_resampler_matches_torchaudio(fx, clip):
    assert _diff(A.resample(clip, 22050, 24000), fx["resampled"]) <= TOL
    down = A.resample(synthetic_signal(4410, 44100, 0.5, seed=fx["down_in_seed"]), 44100, 22050)
    assert _diff(down, fx["down_resampled"]) <= TOL
    assert A.resample(clip, 22050, 22050) is clip


def test_ar_conditioning_mel_matches_official(fx, clip):
    assert _diff(A.ar_conditioning_mel(clip), fx["ar_mel_raw"]) <= TOL
    padded = A.ar_conditioning_mel(A.official_ar_clip(clip))
    assert tuple(padded.shape) == fx["ar_cond_shape"] == (1, 80, 517)
    assert _diff(padded[..., :160], fx["ar_cond_head"]) <= TOL
    assert abs(float(padded.double().sum() - fx["ar_cond_sum"])) <= TOL * padded.numel()
    # (B, 1, T) and (T,) inputs are accepted like the official module's squeeze.
    assert torch.equal(A.ar_conditioning_mel(clip[:, None]), A.ar_conditioning_mel(clip[0]))


def test_ar_random_crop_follows_python_random(fx):
    long_clip = synthetic_signal(154350, 22050, 0.5, seed=1)  # 7 s: a 1 s gap to crop from
    random.seed(fx["long_seed"])
    mel = A.ar_conditioning_mel(A.official_ar_clip(long_clip))
    assert mel.shape == (1, 80, 517)
    assert _diff(mel[..., :12], fx["long_ar_head"]) <= TOL
    assert abs(float(mel.double().sum() - fx["long_ar_sum"])) <= TOL * mel.numel()
    # A private Random with the same seed picks the same window.
    again = A.official_ar_clip(long_clip, rng=random.Random(fx["long_seed"]))
    assert torch.equal(A.ar_conditioning_mel(again), mel)


def test_univnet_mel_matches_official(fx, clip):
    assert _diff(A.univnet_mel(A.official_diffusion_clip(clip)), fx["diff_cond_mel"]) <= TOL
    loud = synthetic_signal(24000, 24000, 1.6, seed=2)  # exceeds [-1, 1]: must be clipped first
    assert _diff(A.univnet_mel(loud), fx["loud_univnet"]) <= TOL


def test_slaney_filterbank_equals_librosa():
    librosa = pytest.importorskip("librosa")
    ref = librosa.filters.mel(sr=24000, n_fft=1024, n_mels=100, fmin=0, fmax=12000)
    ours = A.slaney_mel_filterbank(24000, 1024, 100, 0.0, 12000.0)
    assert _diff(ours, torch.from_numpy(ref)) <= 1e-7


def test_official_conditioning_mels_stack_per_clip(fx, clip):
    ar, diff = A.official_conditioning_mels([clip, clip])
    assert ar.shape == (1, 2, 80, 517) and diff.shape == (1, 2, 100, 401)
    assert _diff(diff[:, 1], fx["diff_cond_mel"]) <= TOL
    assert _diff(ar[:, 0, :, :160], fx["ar_cond_head"]) <= TOL


def test_whole_clip_chunks_cover_all_audio():
    a, b = torch.arange(100.0)[None], torch.arange(100.0, 250.0)[None]
    chunks = A.whole_clip_chunks([a, b], max_chunk_samples=60)
    # 250 samples, at most 60 each: 5 slices of 50 (torch.chunk sizes), all equal length.
    assert [c.shape for c in chunks] == [torch.Size([1, 50])] * 5
    assert torch.equal(torch.cat(chunks, dim=-1), torch.arange(250.0)[None])
    uneven = A.whole_clip_chunks([torch.ones(1, 130)], max_chunk_samples=60)
    assert [c.shape[-1] for c in uneven] == [44, 44, 44]
    assert uneven[-1][0, -2:].tolist() == [0.0, 0.0]  # the short last slice is zero-padded
    assert len(A.whole_clip_chunks([torch.ones(1, 50)], max_chunk_samples=60)) == 1
    with pytest.raises(ValueError):
        A.whole_clip_chunks([], max_chunk_samples=60)


def test_chunk_conditioning_mels_shapes(clip):
    chunks = A.whole_clip_chunks([clip, clip], max_chunk_samples=22050)
    ar, diff = A.chunk_conditioning_mels(chunks)
    size = chunks[0].shape[-1]
    assert ar.shape == (1, len(chunks), 80, 1 + size // 256)
    assert diff.shape == (1, len(chunks), 100, 1 + math.ceil(size * 24000 / 22050) // 256)
    assert torch.isfinite(ar).all() and torch.isfinite(diff).all()


def test_tacotron_mel_normalisation_round_trips():
    x = torch.linspace(-11.5, 2.3, 7)
    assert _diff(A.denormalize_tacotron_mel(A.normalize_tacotron_mel(x)), x) <= 1e-5
    assert A.denormalize_tacotron_mel(torch.tensor([-1.0, 1.0])).tolist() == pytest.approx(
        [A.TACOTRON_MEL_MIN, A.TACOTRON_MEL_MAX])
