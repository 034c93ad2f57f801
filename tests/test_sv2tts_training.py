"""sv2tts training against the OFFICIAL Real-Time-Voice-Cloning code (tests/fixtures/sv2tts/training.pt,
made by make_training_fixtures.py in its reference venv): the synthesizer preprocessing of a real
clip (mel + embedding), the synthesizer's three losses, gradients and one optimiser step as the
training loop takes it, and the vocoder's items, windows and loss; plus the schedule and caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.fixtures.sv2tts.golden import FIXTURES_DIR, clip_16k, max_abs_diff, randomized_state
from voxmith.engines.base import FinetuneSpec, TrainingLine
from voxmith.engines.sv2tts import synthesizer_training, vocoder_training
from voxmith.engines.sv2tts.hparams import EncoderConfig, SignalConfig, TacotronConfig, WaveRNNConfig
from voxmith.engines.sv2tts.speaker_encoder import SpeakerEncoder
from voxmith.engines.sv2tts.tacotron import Tacotron
from voxmith.engines.sv2tts.training_data import (LineCache, PreparedLine, prepare_lines, synthesizer_mel,
                                                  utterance_embedding, utterance_wav)
from voxmith.engines.sv2tts.training_settings import TrainingHparams
from voxmith.engines.sv2tts.wavernn import WaveRNN
from voxmith.training.optimizers import build_optimizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def fx():
    return torch.load(FIXTURES_DIR / "training.pt", weights_only=False)


def _tiny(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    module.load_state_dict(randomized_state(module.state_dict(), seed), strict=True)
    return module


def test_preprocessing_of_a_real_clip_matches_official(fx):
    wav = utterance_wav(clip_16k(), TrainingHparams())
    assert len(wav) == fx["pre_wav_len"]  # the same VAD decisions: the same pauses removed
    assert max_abs_diff(wav[:2000], fx["pre_wav_head"]) < 1e-6
    assert abs(float(np.sum(np.abs(wav), dtype=np.float64)) - fx["pre_wav_abs_sum"]) < 1e-3
    mel = synthesizer_mel(wav, SignalConfig())
    assert mel.shape == tuple(fx["pre_mel"].shape) and mel.shape[0] == 80
    assert max_abs_diff(mel, fx["pre_mel"]) < 1e-4  # in [-4, 4]
    encoder = _tiny(SpeakerEncoder(EncoderConfig.tiny()), 1701).eval()
    assert max_abs_diff(utterance_embedding(encoder, wav), fx["pre_embedding"]) < 1e-5


def _syn_lines(fx) -> list:
    return [PreparedLine(f"l{i}", f"k{i}", "", chars.numpy(), mel.numpy(), embed.numpy(), np.zeros(1, np.float32))
            for i, (chars, mel, embed) in enumerate(fx["syn_items"])]


def test_synthesizer_collate_and_losses_match_official(fx):
    hparams = TrainingHparams(tts_schedule=((2, fx["lr"], 10, 2),))
    batch = synthesizer_training.collate(_syn_lines(fx), pad_value=-4.0)
    assert torch.equal(batch["chars"], fx["syn_chars"])
    model = synthesizer_training.SynthesizerTrainer(_tiny(Tacotron(TacotronConfig.tiny()), 2302), hparams, -4.0)
    model.train()
    torch.manual_seed(fx["train_seed"])  # dropout and zoneout draw from the global RNG, as officially
    losses = model(batch)
    padded = torch.nn.functional.pad(batch["mels"], (0, (-batch["mels"].shape[2]) % 2), value=-4.0)
    assert torch.equal(padded, fx["syn_mels"])
    assert torch.equal(synthesizer_training.stop_targets(batch["frames"], padded.shape[2]), fx["syn_stop"])
    got = torch.stack([losses["synthesizer.decoder_mel"], losses["synthesizer.postnet_mel"], losses["synthesizer.stop"]])
    assert max_abs_diff(got, fx["syn_losses"]) < 1e-5

    # One step as the loop takes it: backward, clip to 1.0, the task's optimizer (Adam = AdamW without decay).
    sum(losses.values()).backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    assert abs(float(norm) - float(fx["syn_grad_norm"])) < 1e-4 * float(fx["syn_grad_norm"])
    params = dict(model.synthesizer.named_parameters())
    for name, grad in fx["syn_grads"].items():
        assert max_abs_diff(params[name].grad, grad) < 1e-5 * max(1.0, float(grad.abs().max())), name
    task = synthesizer_training.SynthesizerTrainingTask.__new__(synthesizer_training.SynthesizerTrainingTask)
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], "adamw", fx["lr"],
                                torch.device("cpu"), **task.optimizer_options)
    optimizer.step()
    torch.manual_seed(fx["train_seed"])
    model.synthesizer.step.fill_(0)
    with torch.no_grad():
        after = model(batch)
    got_after = torch.stack([after["synthesizer.decoder_mel"], after["synthesizer.postnet_mel"], after["synthesizer.stop"]])
    assert max_abs_diff(got_after, fx["syn_losses_after"]) < 1e-4
    assert (got_after < got).all()


def test_synthesizer_schedule_sets_lr_and_r_from_the_model_step():
    hparams = TrainingHparams(tts_schedule=((1, 1e-3, 5, 2), (2, 5e-4, 10, 2)))
    taco = Tacotron(TacotronConfig.tiny())
    taco.step.fill_(4)  # a "pretrained" model 4 steps in
    line = PreparedLine("a", "k", "", np.array([5, 6, 7, 2]), np.zeros((8, 7), np.float32), np.ones(6, np.float32) / 6 ** .5,
                        np.zeros(1, np.float32))
    task = synthesizer_training.SynthesizerTrainingTask(taco, [line], [], hparams, 1, 0, -4.0)
    assert [task.learning_rate_at(s) for s in (0, 1, 5, 6, 50)] == [1e-3, 5e-4, 5e-4, 5e-4, 5e-4]
    task.model.train()
    task.model(task.batches(0)[0])
    assert taco.r == 1 and int(taco.step) == 5
    task.model(task.batches(0)[0])
    assert taco.r == 2 and int(taco.step) == 6


def test_vocoder_items_windows_and_loss_match_official(fx):
    c = WaveRNNConfig.tiny()
    items = [vocoder_training.vocoder_item(mel.numpy(), wav.numpy(), hop=c.hop_samples, bits=c.bits,
                                           mel_max_abs=4.0, preemphasis=0.97) for mel, wav in fx["voc_raw"]]
    for item, (mel, levels) in zip(items, fx["voc_items"]):
        assert max_abs_diff(item.mel, mel) < 1e-6 and np.array_equal(item.levels, levels.numpy())
    rng = np.random.RandomState(32)  # the fixture's np.random.seed
    offsets = vocoder_training.random_offsets(items, fx["voc_seq_len"], c.hop_samples, c.pad, rng)
    assert offsets == fx["voc_offsets"]
    batch = vocoder_training.windows(items, offsets, fx["voc_seq_len"], c.hop_samples, c.pad, c.bits)
    assert max_abs_diff(batch["x"], fx["voc_x"]) < 1e-7 and torch.equal(batch["y"], fx["voc_y"])
    assert max_abs_diff(batch["mels"], fx["voc_m"]) < 1e-7
    model = vocoder_training.VocoderTrainer(_tiny(WaveRNN(c), 4404))
    model.train()
    loss = model(batch)["vocoder.ce"]
    assert abs(float(loss.detach()) - float(fx["voc_loss"])) < 1e-5
    loss.backward()
    params = dict(model.vocoder.named_parameters())
    for name, grad in fx["voc_grads"].items():
        assert max_abs_diff(params[name].grad, grad) < 1e-5 * max(1.0, float(grad.abs().max())), name


def test_vocoder_batches_are_the_same_for_the_same_epoch():
    c = WaveRNNConfig.tiny()
    rng = np.random.default_rng(0)
    items = [vocoder_training.vocoder_item(rng.uniform(-4, 4, (8, 20 + i)).astype(np.float32),
                                           rng.uniform(-.5, .5, 6 * (20 + i)).astype(np.float32), hop=6, bits=9,
                                           mel_max_abs=4.0, preemphasis=0.97) for i in range(5)]
    task = vocoder_training.VocoderTrainingTask(WaveRNN(c), items, [], 30, 2, 0)
    first, again, other = task.batches(3), task.batches(3), task.batches(4)
    assert len(first) == 3 and all(torch.equal(a["y"], b["y"]) for a, b in zip(first, again))
    assert not all(torch.equal(a["y"], b["y"]) for a, b in zip(first, other))


def test_gta_mels_are_deterministic_and_teacher_forced():
    taco = _tiny(Tacotron(TacotronConfig.tiny()), 2302)
    rng = np.random.default_rng(1)
    lines = [PreparedLine(f"l{i}", f"k{i}", "", np.array([5 + i, 6, 7, 2]), rng.uniform(-4, 4, (8, 9 + i)).astype(np.float32),
                          np.ones(6, np.float32) / 6 ** .5, np.zeros(1, np.float32)) for i in range(3)]
    first = vocoder_training.gta_mels(taco, lines, 2, -4.0)
    again = vocoder_training.gta_mels(taco, lines, 2, -4.0)
    assert [m.shape for m in first] == [(8, 9), (8, 10), (8, 11)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # dropout off, as officially


def test_prepared_lines_are_cached_and_left_out_lines_say_why(tmp_path, monkeypatch):
    import soundfile as sf

    clip = clip_16k()
    sf.write(tmp_path / "long.wav", clip, 16000)
    sf.write(tmp_path / "short.wav", clip[:8000], 16000)
    lines = [TrainingLine(tmp_path / "long.wav", "Hello there."), TrainingLine(tmp_path / "short.wav", "Hi."),
             TrainingLine(tmp_path / "long.wav", "")]
    encoder = _tiny(SpeakerEncoder(EncoderConfig.tiny()), 1701).eval()
    calls = []

    def get_encoder():
        calls.append(1)
        return encoder

    signal = SignalConfig(mel_bands=80)
    kwargs = dict(hparams=TrainingHparams(), signal=signal, encoder=get_encoder, encoder_id="tiny",
                  cache=LineCache(tmp_path / "cache"), what="training")
    prepared, skipped = prepare_lines(lines, **kwargs)
    assert [p.name for p in prepared] == ["long.wav"] and len(skipped) == 2
    assert any("utterance_min_duration" in s for s in skipped) and any("transcript" in s for s in skipped)
    used = len(calls)
    again, _ = prepare_lines(lines, **kwargs)
    assert len(calls) == used  # from the cache: no encoder needed
    assert np.array_equal(again[0].mel, prepared[0].mel) and np.array_equal(again[0].embedding, prepared[0].embedding)
    for path in (tmp_path / "cache").iterdir():
        path.write_bytes(b"damaged")
    third, _ = prepare_lines(lines, **kwargs)
    assert np.array_equal(third[0].mel, prepared[0].mel)  # a damaged entry is made again


def test_finetune_spec_settings_reach_the_stage_builder():
    spec = FinetuneSpec(train=(), validation=(), batch_size=1, seed=0, cache_dir=FIXTURES_DIR,
                        settings={"stage": "vocoder"})
    assert TrainingHparams.from_settings(spec.settings).stage == "vocoder"


def test_synthesizer_losses_under_mixed_precision():
    """misc: mixed_precision runs the forward under bfloat16 autocast, where CUDA refuses a binary
    cross-entropy of probabilities, so the stop loss is computed with autocast off. The CPU's autocast
    allows it either way: this only checks that the losses stay finite float32 scalars there."""
    taco = _tiny(Tacotron(TacotronConfig.tiny()), 2302)
    line = PreparedLine("a", "k", "", np.array([5, 6, 7, 2]), np.zeros((8, 7), np.float32),
                        np.ones(6, np.float32) / 6 ** .5, np.zeros(1, np.float32))
    model = synthesizer_training.SynthesizerTrainer(taco, TrainingHparams(), -4.0).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model(synthesizer_training.collate([line], -4.0))
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["synthesizer.stop"].dtype == torch.float32
