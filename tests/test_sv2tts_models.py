"""Golden tests: voxmith's SV2TTS models against the official Real-Time-Voice-Cloning code at tiny
size (fixtures made by tests/fixtures/sv2tts/make_*_fixtures.py in the official reference venv;
weights from golden.randomized_state, keyed by the official key names, so no weights are stored)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.fixtures.sv2tts.golden import (FIXTURES_DIR, clip_16k, max_abs_diff, randomized_state)
from voxmith.engines.sv2tts import encoder_audio, speaker_encoder
from voxmith.engines.sv2tts.hparams import EncoderAudio, EncoderConfig


def _fixture(name: str) -> dict:
    return torch.load(FIXTURES_DIR / name, weights_only=False)


@pytest.fixture(scope="module")
def encoder_fx():
    return _fixture("encoder.pt")


def _tiny_encoder(seed: int) -> speaker_encoder.SpeakerEncoder:
    model = speaker_encoder.SpeakerEncoder(EncoderConfig.tiny())
    model.load_state_dict(randomized_state(model.state_dict(), seed), strict=True)
    return model.eval()


def test_encoder_forward_matches_official(encoder_fx):
    model = _tiny_encoder(encoder_fx["seed"])
    with torch.no_grad():
        out = model(encoder_fx["mels"])
    assert max_abs_diff(out, encoder_fx["forward"]) < 1e-6


def test_partial_windows_match_official(encoder_fx):
    for n_samples, (wav_slices, mel_slices) in encoder_fx["slices"].items():
        ours_wav, ours_mel = speaker_encoder.partial_slices(n_samples)
        assert [(s.start, s.stop) for s in ours_wav] == wav_slices, n_samples
        assert [(s.start, s.stop) for s in ours_mel] == mel_slices, n_samples


def test_embedding_of_a_real_clip_matches_official(encoder_fx):
    """Preprocessing (levelling, WebRTC-VAD pause removal), 40-band mels, 1.6 s windows with half
    overlap, averaged and normalised: the official embed_utterance of the demo clip."""
    prepared = encoder_audio.preprocess_wav(clip_16k(), 16000)
    assert len(prepared) == encoder_fx["prepared_len"]
    assert max_abs_diff(prepared[:2000], encoder_fx["prepared_head"]) < 1e-6
    assert abs(float(np.abs(prepared).sum()) - encoder_fx["prepared_sum"]) < 1e-3
    mel = encoder_audio.mel_frames(prepared, EncoderAudio())
    assert max_abs_diff(mel[:50], encoder_fx["mel_head"]) <= 1e-5 * float(encoder_fx["mel_head"].abs().max())
    model = _tiny_encoder(encoder_fx["seed"])
    windows = speaker_encoder.partial_mels(prepared)
    partials = speaker_encoder.embed_partials(model, windows)
    assert max_abs_diff(partials, encoder_fx["partials"]) < 1e-5
    embedding = speaker_encoder.embed_utterance(model, prepared)
    assert max_abs_diff(embedding, encoder_fx["embedding"]) < 1e-5
    assert abs(np.linalg.norm(embedding) - 1) < 1e-5


# --- text front end ------------------------------------------------------------------------------

def test_text_front_end_matches_official():
    """english_cleaners (Unidecode, numbers through inflect, abbreviations) and the symbol ids,
    on sentences with money, years, ordinals, decimals, abbreviations, non-ASCII and ARPAbet braces."""
    import json

    from voxmith.engines.sv2tts import text

    table = json.loads((FIXTURES_DIR / "text.json").read_text())
    assert "".join(text.SYMBOLS) == table["symbols"]
    for row in table["sentences"]:
        assert text.english_cleaners(row["text"]) == row["cleaned"], row["text"]
        assert text.text_to_ids(row["text"]) == row["ids"], row["text"]


# --- Tacotron ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tacotron_fx():
    return _fixture("tacotron.pt")


def _tiny_tacotron(seed: int):
    from voxmith.engines.sv2tts.hparams import TacotronConfig
    from voxmith.engines.sv2tts.tacotron import Tacotron

    model = Tacotron(TacotronConfig.tiny())
    model.load_state_dict(randomized_state(model.state_dict(), seed), strict=True)
    return model.eval()


def test_tacotron_teacher_forced_forward_matches_official(tacotron_fx):
    model = _tiny_tacotron(tacotron_fx["seed"])
    generator = torch.Generator().manual_seed(tacotron_fx["forward_seed"])
    with torch.no_grad():
        out = model(tacotron_fx["chars"], tacotron_fx["mels"], tacotron_fx["embeds"], generator=generator)
    assert max_abs_diff(out.mels, tacotron_fx["forward_mels"]) < 1e-5
    assert max_abs_diff(out.postnet_mels, tacotron_fx["forward_post"]) < 1e-5
    assert max_abs_diff(out.attention, tacotron_fx["forward_attention"]) < 1e-6
    assert max_abs_diff(out.stop, tacotron_fx["forward_stop"]) < 1e-6


def test_tacotron_inference_loop_matches_official(tacotron_fx):
    """Free-running generation with the pre-net dropout drawn from a seeded generator: the same
    frames as the official generate() after torch.manual_seed, and the same stopping step."""
    model = _tiny_tacotron(tacotron_fx["seed"])
    generator = torch.Generator().manual_seed(tacotron_fx["generate_seed"])
    out = model.generate(tacotron_fx["chars"], tacotron_fx["embeds"], generator=generator,
                         max_frames=tacotron_fx["generate_steps"])
    assert out.postnet_mels.shape == tacotron_fx["generate_post"].shape
    assert max_abs_diff(out.mels, tacotron_fx["generate_mels"]) < 1e-5
    assert max_abs_diff(out.postnet_mels, tacotron_fx["generate_post"]) < 1e-5
    assert max_abs_diff(out.attention, tacotron_fx["generate_attention"]) < 1e-6

    with torch.no_grad():
        model.decoder.stop_proj.bias += tacotron_fx["stop_bias"]
    generator = torch.Generator().manual_seed(tacotron_fx["generate_seed"])
    stopped = model.generate(tacotron_fx["chars"], tacotron_fx["embeds"], generator=generator,
                             max_frames=tacotron_fx["generate_steps"])
    assert stopped.postnet_mels.shape == tacotron_fx["stop_post"].shape
    assert max_abs_diff(stopped.postnet_mels, tacotron_fx["stop_post"]) < 1e-5


def test_trailing_silence_trim_matches_official(tacotron_fx):
    from voxmith.engines.sv2tts.tacotron import trim_trailing_silence

    trimmed = trim_trailing_silence(tacotron_fx["trim_input"], -3.4)
    assert trimmed.shape[1] == tacotron_fx["trim_frames"]


def test_tacotron_draws_only_from_its_generator(tacotron_fx):
    """The global RNG is neither read nor advanced: the same generator seed gives the same mels
    whatever the global state, and the global stream is where it was."""
    model = _tiny_tacotron(tacotron_fx["seed"])
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    a = model.generate(tacotron_fx["chars"], tacotron_fx["embeds"], generator=torch.Generator().manual_seed(3),
                       max_frames=12).postnet_mels
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(99)
    b = model.generate(tacotron_fx["chars"], tacotron_fx["embeds"], generator=torch.Generator().manual_seed(3),
                       max_frames=12).postnet_mels
    assert torch.equal(a, b)


# --- WaveRNN and Griffin-Lim ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def vocoder_fx():
    return _fixture("vocoder.pt")


def _tiny_wavernn(seed: int):
    from voxmith.engines.sv2tts.hparams import WaveRNNConfig
    from voxmith.engines.sv2tts.wavernn import WaveRNN

    model = WaveRNN(WaveRNNConfig.tiny())
    model.load_state_dict(randomized_state(model.state_dict(), seed), strict=True)
    return model.eval()


def test_wavernn_forward_matches_official(vocoder_fx):
    model = _tiny_wavernn(vocoder_fx["seed"])
    with torch.no_grad():
        logits = model(vocoder_fx["forward_x"], torch.nn.functional.pad(vocoder_fx["mels"], (2, 2)))
    assert max_abs_diff(logits[:, :, ::8], vocoder_fx["forward_every_8th_class"]) < 1e-5


def _as_official_generate(model, seed: int) -> torch.Generator:
    """A generator at the state the official generate() leaves torch's global RNG in before its
    first sample: it builds two nn.GRUCell copies of the GRUs, whose default initialisation draws
    uniform values (weights, then biases) that are thrown away. voxmith's generate() makes no such
    draws, so the test makes them here."""
    generator = torch.Generator().manual_seed(seed)
    for gru in (model.rnn1, model.rnn2):
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            torch.empty(getattr(gru, name).shape).uniform_(generator=generator)
    return generator


def test_wavernn_batched_generation_matches_official(vocoder_fx):
    """Folds with overlap, one sample per step drawn from a generator in the state of the official
    global RNG, crossfade, mu-law decoding, de-emphasis and the fade-out: sample for sample."""
    model = _tiny_wavernn(vocoder_fx["seed"])
    batched = model.generate(vocoder_fx["mels"], generator=_as_official_generate(model, vocoder_fx["batched_seed"]))
    assert batched.shape == tuple(vocoder_fx["batched"].shape)
    assert max_abs_diff(batched, vocoder_fx["batched"]) < 1e-9
    unbatched = model.generate(vocoder_fx["mels"], batched=False,
                               generator=_as_official_generate(model, vocoder_fx["unbatched_seed"]))
    assert max_abs_diff(unbatched, vocoder_fx["unbatched"]) < 1e-9


def test_griffin_lim_matches_official(vocoder_fx):
    from voxmith.engines.sv2tts.griffin_lim import griffin_lim

    wav = griffin_lim(vocoder_fx["gl_mel"].numpy(), seed=vocoder_fx["gl_seed"])
    reference = vocoder_fx["gl_wav"].numpy()
    assert wav.shape == reference.shape
    assert max_abs_diff(wav, reference) <= 1e-4 * float(np.abs(reference).max())


# --- the official checkpoints' keys and shapes at full size --------------------------------------

def _official_keys(name: str) -> dict:
    import json

    return json.loads((FIXTURES_DIR / "keys" / f"keys_{name}.json").read_text())


@pytest.mark.parametrize("name", ["encoder", "synthesizer", "vocoder"])
def test_full_size_modules_have_the_official_keys_and_shapes(name):
    """Built on the meta device (no memory): every key of the official module at the official
    hyper-parameters, with its shape and dtype, and nothing else, so the checkpoints load strictly."""
    from voxmith.engines.sv2tts.hparams import EncoderConfig, TacotronConfig, WaveRNNConfig
    from voxmith.engines.sv2tts.tacotron import Tacotron
    from voxmith.engines.sv2tts.wavernn import WaveRNN

    build = {"encoder": lambda: speaker_encoder.SpeakerEncoder(EncoderConfig()),
             "synthesizer": lambda: Tacotron(TacotronConfig()), "vocoder": lambda: WaveRNN(WaveRNNConfig())}[name]
    with torch.device("meta"):
        module = build()
    ours = {k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in module.state_dict().items()}
    official = _official_keys(name)
    assert sorted(set(official) - set(ours)) == [] and sorted(set(ours) - set(official)) == []
    assert ours == official


def test_text_symbols_match_the_synthesizer_embedding():
    from voxmith.engines.sv2tts import text

    assert _official_keys("synthesizer")["encoder.embedding.weight"][0] == [len(text.SYMBOLS), 512]


# --- GE2E loss (speaker encoder training) ----------------------------------------------------------

def test_ge2e_similarity_loss_and_gradients_match_official():
    from voxmith.engines.sv2tts.ge2e import ge2e_loss, similarity_matrix

    fx = _fixture("ge2e.pt")
    embeds = fx["embeds"].clone().requires_grad_(True)
    weight = torch.tensor([fx["weight"]], requires_grad=True)
    bias = torch.tensor([fx["bias"]], requires_grad=True)
    assert max_abs_diff(similarity_matrix(embeds, weight, bias), fx["similarity"]) < 1e-5
    loss = ge2e_loss(embeds, weight, bias)
    assert abs(loss.item() - float(fx["loss"])) < 1e-6
    loss.backward()
    assert max_abs_diff(embeds.grad, fx["grad_embeds"]) < 1e-6
    assert max_abs_diff(weight.grad, fx["grad_weight"]) < 1e-6 and max_abs_diff(bias.grad, fx["grad_bias"]) < 1e-6
