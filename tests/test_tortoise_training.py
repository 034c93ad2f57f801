"""TorToiSe fine-tuning: the DVAE and the training losses against the reference code (golden, tiny
size), and the training task on a tiny real dataset (the demo clips cut into six lines) through the
engine-independent loop: full fine-tune, LoRA, the code cache and `with_finetune`."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import soundfile
import torch

from tests.fixtures.tortoise.golden import FIXTURES_DIR, randomized_state
from voxmith.audio import load_audio
from voxmith.engines import Finetune, FinetuneSpec, LoraSpec, TrainingLine
from voxmith.engines.tortoise import checkpoints
from voxmith.engines.tortoise.audio import ar_conditioning_mel
from voxmith.engines.tortoise.autoregressive import UnifiedVoice, UnifiedVoiceConfig
from voxmith.engines.tortoise.dvae import DiscreteVAE, DiscreteVAEConfig
from voxmith.engines.tortoise.engine import TortoiseEngine, TortoiseSettings
from voxmith.engines.tortoise.lora import merge_lora
from voxmith.engines.tortoise.training import TortoiseTrainingTask
from voxmith.engines.tortoise.training_data import MAX_WAV_SAMPLES, codes_for_wave, load_wave_22k
from voxmith.errors import VoxmithError
from voxmith.training import TrainingRun, defaults_for, train_loop

# Six ~3 s lines cut from the two demo clips (LJ Speech), with made-up plausible transcripts.
CUTS = [("lj_1.flac", 0.0, 3.2, "printing, in the only sense with which we are concerned"),
        ("lj_1.flac", 3.2, 6.4, "differs from most if not from all the arts"),
        ("lj_1.flac", 6.4, 9.6, "and crafts represented in the exhibition"),
        ("lj_2.flac", 0.0, 3.0, "in being comparatively modern"),
        ("lj_2.flac", 3.0, 6.0, "for although the chinese took impressions"),
        ("lj_2.flac", 6.0, 9.0, "from wood blocks engraved in relief")]
TEXT = "A small boat drifted."
SMALL = {"preset": "ultra_fast", "num_autoregressive_samples": 2, "autoregressive_batch_size": 2,
         "max_mel_tokens": 16, "diffusion_iterations": 2}


# ------------------------------------------------------------------------------- golden: models


def test_dvae_matches_reference_codes_from_real_audio():
    golden = torch.load(FIXTURES_DIR / "dvae.pt")
    dvae = DiscreteVAE(DiscreteVAEConfig.tiny()).eval()
    assert sorted(dvae.state_dict()) == sorted(golden["keys"])
    state = randomized_state(dvae.state_dict(), golden["seed"])
    state["codebook.embed"] = golden["codebook"]
    dvae.load_state_dict(state, strict=True)
    assert torch.equal(dvae.get_codebook_indices(golden["mel"]), golden["codes"])
    # Our own mel of the same samples gives the same codes (this is the path training takes).
    mel = ar_conditioning_mel(golden["pcm"].float()[None] / 32768.0)
    assert torch.equal(dvae.get_codebook_indices(mel), golden["codes"])
    assert golden["codes"].unique().numel() > 10  # many codebook entries exercised, not one winner
    assert torch.allclose(dvae.decode(golden["codes"]), golden["decoded"], atol=1e-5)


def test_dvae_full_size_layout_is_the_released_files():
    with torch.device("meta"):
        state = DiscreteVAE().state_dict()
    assert len(state) == 53
    shapes = {"encoder.0.0.weight": (512, 80, 3), "encoder.1.0.weight": (1024, 512, 3),
              "encoder.4.net.4.weight": (1024, 1024, 1), "encoder.5.weight": (512, 1024, 1),
              "decoder.0.weight": (1024, 512, 1), "decoder.4.0.conv.weight": (1024, 1024, 3),
              "decoder.5.0.conv.weight": (512, 1024, 3), "decoder.6.weight": (80, 512, 1),
              "codebook.embed": (512, 8192), "codebook.cluster_size": (8192,), "codebook.embed_avg": (512, 8192)}
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    entry = checkpoints.BY_NAME["dvae.pth"]
    assert not entry.required and entry.sha256.startswith("a9908253")
    assert checkpoints.checkpoint_url("dvae.pth").endswith(
        "jbetker/tortoise-tts-v2/resolve/3704aea61678e7e468a06d8eea121dba368a798e/.models/dvae.pth")


def test_training_losses_match_the_official_forward():
    golden = torch.load(FIXTURES_DIR / "ar_loss.pt")
    model = UnifiedVoice(UnifiedVoiceConfig.tiny()).eval()
    model.load_state_dict(randomized_state(model.state_dict(), golden["seed"]), strict=True)
    for name, case in golden["cases"].items():
        for key, clip in (("clip", True), ("noclip", False)):
            codes = case["codes"].clone()
            with torch.no_grad():
                loss_text, loss_mel, logits = model(case["cond"], case["text"], case["text_lengths"], codes,
                                                    case["wav_lengths"], clip_inputs=clip)
            assert torch.equal(codes, case["codes"]), "the caller's codes must not be overwritten"
            assert tuple(logits.shape) == case[f"{key}_logits_shape"], name
            torch.testing.assert_close(loss_text, case[f"{key}_loss_text"], rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(loss_mel, case[f"{key}_loss_mel"], rtol=1e-6, atol=1e-6)
            torch.testing.assert_close(logits[:, ::golden["logit_stride"]], case[f"{key}_logits"],
                                       rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------- the dataset


@pytest.fixture(scope="module")
def lines(tmp_path_factory, demo_files):
    folder = tmp_path_factory.mktemp("lines")
    by_name = {p.name: load_audio(p) for p in demo_files}
    made = []
    for i, (name, start, end, text) in enumerate(CUTS):
        audio = by_name[name]
        rate = audio.sample_rate_hz
        path = folder / f"line{i}.wav"
        soundfile.write(str(path), audio.samples[int(start * rate):int(end * rate)], rate)
        made.append(TrainingLine(path, text))
    return tuple(made[:2] + made[3:5]), (made[2], made[5])


def spec_for(lines, cache_dir, lora=None, batch_size=2):
    train, validation = lines
    return FinetuneSpec(train=train, validation=validation, batch_size=batch_size, seed=7, cache_dir=cache_dir,
                        lora=lora)


def run_config(epochs, learning_rate):
    config = defaults_for(4, epochs, dataset="demo", engine="tortoise")
    config.schedule.batch_size = 2
    config.schedule.learning_rate = learning_rate
    config.schedule.grad_accumulation = 1
    config.schedule.warmup_steps = 0
    config.schedule.scheduler = "cosine"
    config.checkpoints.validate_every_steps = 5
    config.checkpoints.save_every_steps = 1000
    return config


def test_codes_equal_dlas_padding_and_are_cached(lines, tmp_path):
    engine = TortoiseEngine.tiny(seed=5)
    wave = load_wave_22k(lines[0][0].audio_path)
    kept = codes_for_wave(engine.dvae, wave)
    assert kept.shape == (wave.shape[-1] // 1024 + 1,)
    # DLAS pads every clip to max_wav_length before its mel; our margin must not change a kept code.
    dlas = engine.dvae.get_codebook_indices(ar_conditioning_mel(torch.nn.functional.pad(
        wave, (0, MAX_WAV_SAMPLES - wave.shape[-1]))[None]))[0]
    assert torch.equal(kept, dlas[:kept.shape[0]])

    calls = []

    def counting_dvae():
        calls.append(1)
        return engine.dvae

    def make(dvae_id):
        return TortoiseTrainingTask(copy.deepcopy(engine.models().ar), spec_for(lines, tmp_path), dvae=counting_dvae,
                                    dvae_id=dvae_id, encode_text=engine.tokenizer().encode, cache_key="t")

    first = make("a")
    assert len(calls) == 6 and len(list(tmp_path.glob("t-dvae-a/*.pt"))) == 6
    calls.clear()
    second = make("a")
    assert calls == []  # every clip's codes came from the cache
    assert all(torch.equal(a.codes, b.codes) for a, b in zip(first.train_lines, second.train_lines))
    make("b")  # another DVAE: recomputed, in its own folder
    assert len(calls) == 6


def test_batches_are_padded_like_dlas_and_reproducible(lines, tmp_path):
    task = TortoiseEngine.tiny(seed=5).training_task(spec_for(lines, tmp_path))
    batches = task.batches(0)
    assert len(batches) == 2  # 4 lines, batch 2, last partial batch dropped
    batch = batches[0]
    assert batch.cond_mels.shape[:3] == (2, 2, 80) and batch.text.shape[0] == 2
    longest = int(batch.text_lengths.max())
    assert batch.text.shape[1] == longest and (batch.text[batch.text_lengths.argmin(), longest - 1] == 0)
    assert batch.codes.shape[1] == int(batch.wav_lengths.max()) // 1024 + 1
    for again, first in zip(task.batches(0), batches):
        assert all(torch.equal(getattr(again, f), getattr(first, f))
                   for f in ("cond_mels", "text", "codes", "wav_lengths"))
    assert not torch.equal(task.batches(1)[0].cond_mels, batches[0].cond_mels)


def test_bad_specs_are_refused_in_words(lines, tmp_path):
    engine = TortoiseEngine.tiny(seed=5)
    with pytest.raises(VoxmithError, match="fewer than the batch size 8"):
        engine.training_task(spec_for(lines, tmp_path, batch_size=8))
    with pytest.raises(VoxmithError, match="match no layer"):
        engine.training_task(spec_for(lines, tmp_path, lora=LoraSpec(4, 8.0, ("attention",))))


# ------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def full_run(lines, tmp_path_factory):
    engine = TortoiseEngine.tiny(seed=5)
    task = engine.training_task(spec_for(lines, tmp_path_factory.mktemp("cache")))
    config = run_config(epochs=10, learning_rate=2e-3)
    run = TrainingRun.create(tmp_path_factory.mktemp("training"), "full", config)
    before = task.validation_loss()
    result = train_loop(task, run, config=config, handle_sigint=False)
    return task, run, result, before


def test_full_finetune_lowers_the_losses(full_run):
    task, run, result, before = full_run
    rows = run.read_metrics()
    assert result.stopped == "finished" and result.step == 20 and len(rows) == 20
    first = np.mean([r["mel_loss"] for r in rows[:3]])
    last = np.mean([r["mel_loss"] for r in rows[-3:]])
    assert last < 0.7 * first, (first, last)
    # windows of 3 steps, not single rows: one noisy batch on another CPU must not decide it
    assert np.mean([r["text_loss"] for r in rows[-3:]]) < np.mean([r["text_loss"] for r in rows[:3]])
    vals = [r["val_loss"] for r in rows if r["val_loss"] is not None and r["val_loss"] == r["val_loss"]]
    assert len(vals) == 4 and vals[-1] < before, (before, vals)
    state = run.checkpoints.load(run.checkpoints.latest())["model"]
    assert all(k.startswith("ar.") for k in state) and "ar.gpt.h.0.attn.c_attn.weight" in state


def test_finetunes_speak_from_threads_exactly_as_alone(full_run, demo_files):
    """Stock weights and two fine-tunes from three threads at once: each take is what it is alone
    (synthesis holds TORCH_RNG_LOCK, so the seeded runs never interleave on the global RNG)."""
    from concurrent.futures import ThreadPoolExecutor

    _, run, _, _ = full_run
    state = run.checkpoints.load(run.checkpoints.latest())["model"]
    halfway = {k: 0.5 * v if v.is_floating_point() else v for k, v in state.items()}
    config = run.load_config().to_dict()
    engine = TortoiseEngine.tiny(seed=5)
    variants = [engine, engine.with_finetune(Finetune("a", "a", lambda: state, config)),
                engine.with_finetune(Finetune("b", "b", lambda: halfway, config))]
    settings = TortoiseSettings.from_dict(SMALL)
    clips = [load_audio(p) for p in demo_files]
    conds = [v.prepare_conditioning(clips) for v in variants]

    def speak(k: int) -> np.ndarray:
        return variants[k % 3].synthesize(TEXT, conds[k % 3], settings, seed=3 + k // 3)[0].samples

    # "Alone" is one request at a time on one worker thread, as a server runs a lone request: the
    # pytest main thread may carry floating-point state (e.g. denormal flags) other tests left.
    with ThreadPoolExecutor(1) as pool:
        alone = list(pool.map(speak, range(6)))
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(speak, range(6)))
    differ = [(k, a.shape, b.shape) for k, (a, b) in enumerate(zip(alone, together)) if not np.array_equal(a, b)]
    assert not differ, differ
    assert not np.array_equal(alone[0], alone[1]) or alone[0].shape != alone[1].shape


def test_lora_trains_only_adapters_and_round_trips(lines, tmp_path):
    engine = TortoiseEngine.tiny(seed=5)
    stock = {k: v.clone() for k, v in engine.models().ar.state_dict().items()}
    task = engine.training_task(spec_for(lines, tmp_path / "cache", lora=LoraSpec(4, 8.0, ("attn", "mlp"))))
    trainable = [n for n, p in task.model.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 4 * 2 and all(".lora_" in n for n in trainable)  # A, B x 4 layers x 2 blocks
    config = run_config(epochs=4, learning_rate=5e-3)
    run = TrainingRun.create(tmp_path / "training", "lora", config)
    train_loop(task, run, config=config, handle_sigint=False)

    saved = run.checkpoints.load(run.checkpoints.latest())["model"]
    assert saved and all(".lora_" in k for k in saved)
    assert any(k.endswith("lora_B.default.weight") and v.abs().sum() > 0 for k, v in saved.items())
    base = {k.replace(".base_layer", ""): v for k, v in task.model.ar.state_dict().items() if ".lora_" not in k}
    assert all(torch.equal(base[k], stock[k]) for k in stock)  # the frozen weights did not move

    # The checkpoint loads strictly into a fresh task's model and gives the same outputs.
    fresh = engine.training_task(spec_for(lines, tmp_path / "cache", lora=LoraSpec(4, 8.0, ("attn", "mlp"))))
    fresh.model.load_state_dict(saved, strict=True)
    batch = task.batches(0)[0]
    task.model.eval(), fresh.model.eval()
    with torch.no_grad():
        trained = task.model(batch)
        assert torch.equal(fresh.model(batch)["mel"], trained["mel"])
        # Merged into plain weights (what synthesis uses) the model computes the same losses...
        plain = copy.deepcopy(engine.models().ar)
        merge_lora(plain, {k[len("ar."):]: v for k, v in saved.items()}, alpha=8.0)
        cond = plain.get_conditioning(batch.cond_mels)
        merged = plain.training_losses(cond, batch.text, batch.text_lengths, batch.codes, batch.wav_lengths)
        torch.testing.assert_close(merged[1], trained["mel"], rtol=1e-5, atol=1e-5)
        # ...which differ from the stock model's.
        stock_ar = engine.models().ar
        stock_losses = stock_ar.training_losses(stock_ar.get_conditioning(batch.cond_mels), batch.text,
                                                batch.text_lengths, batch.codes, batch.wav_lengths)
        assert abs(float(stock_losses[1]) - float(trained["mel"])) > 1e-3


def test_with_finetune_gives_a_variant_and_leaves_the_stock_engine_alone(full_run, demo_files):
    task, run, _, _ = full_run
    state = run.checkpoints.load(run.checkpoints.latest())["model"]
    engine = TortoiseEngine.tiny(seed=5)
    clips = [load_audio(p) for p in demo_files]
    settings = TortoiseSettings.from_dict(SMALL)

    def speak(which):
        cond = which.prepare_conditioning(clips)
        return which.synthesize(TEXT, cond, settings, seed=3)[0].samples

    stock_key = engine.cache_key()
    stock = speak(engine)
    loads = []
    finetune = Finetune(key="run:20", description="test", load_state=lambda: loads.append(1) or state,
                        config=run.load_config().to_dict())
    variant = engine.with_finetune(finetune)
    assert engine.with_finetune(finetune) is variant  # same key: nothing reloaded
    assert len(loads) == 1 and variant.cache_key() != stock_key  # the conditioning encoder changed
    assert engine.cache_key() == stock_key and variant.with_finetune(None) is engine
    tuned = speak(variant)
    assert tuned.shape != stock.shape or not np.array_equal(tuned, stock)
    assert np.array_equal(speak(engine), stock)  # the stock engine never changed
    with pytest.raises(VoxmithError, match="not a TorToiSe checkpoint"):
        engine.with_finetune(Finetune(key="other", description="bad", load_state=lambda: {"w": torch.zeros(1)}))
    assert np.array_equal(speak(engine), stock) and np.array_equal(speak(variant), tuned)
