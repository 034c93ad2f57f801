"""GPT-SoVITS fine-tuning stages through voxmith's training loop, at tiny size on real clips: the
losses the official recipe minimises go down, each network only moves from its own losses, and the
optimizer is set up as the official one."""

from __future__ import annotations

import pytest
import torch

from voxmith.engines.base import TrainingLine
from voxmith.engines.gpt_sovits import training_data
from voxmith.engines.gpt_sovits.sovits_finetune import LOSSES as SOVITS_LOSSES, SoVITSStage, collate
from voxmith.training import TrainingConfig, TrainingRun, train_loop


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_generator(seed: int = 0):
    from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SoVITS(SoVITSConfig(version="v2", filter_channels=32, n_heads=2, n_layers=1,
                                   upsample_initial_channel=32, with_posterior=True))


class TinyDiscriminator(torch.nn.Module):
    """The official discriminator's interface at toy size (the real one is tested in its own file)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Conv1d(1, 4, 15, 4, padding=7)
        self.b = torch.nn.Conv1d(4, 1, 5, 1, padding=2)

    def judge(self, x):
        h = torch.nn.functional.leaky_relu(self.a(x), 0.1)
        out = self.b(h)
        return out.flatten(1), [h, out]

    def forward(self, real, fake):
        r, r_maps = self.judge(real)
        f, f_maps = self.judge(fake)
        return [r], [f], [r_maps], [f_maps]


@pytest.fixture(scope="module")
def features(demo_files, tmp_path_factory):
    from tests.test_gpt_sovits_engine import tiny_models

    models = tiny_models(3)
    lines = [TrainingLine(demo_files[0], "Printing, in the only sense with which we are at present concerned."),
             TrainingLine(demo_files[1], "differs from most if not from all the arts and crafts.")]
    return training_data.load_lines(lines, tmp_path_factory.mktemp("cache"), models.hubert, models.sovits), models


def short(lines, seconds=1.6):
    """The lines cut to their first seconds (tiny models, fast tests); features stay aligned."""
    import dataclasses

    n = int(seconds * 50)
    return [dataclasses.replace(l, wave_32k=l.wave_32k[: n * 640], hubert=l.hubert[:, :n], codes=l.codes[: n // 2])
            for l in lines]


def test_each_network_moves_only_from_its_own_losses(features):
    lines, _ = features
    stage = SoVITSStage(tiny_generator(), TinyDiscriminator(), short(lines), batch_size=2, seed=0)
    losses = stage.model(stage.batches(0)[0])
    assert set(losses) == {t.key for t in SOVITS_LOSSES} and all(torch.isfinite(v) for v in losses.values())
    generator, discriminator = stage.model.generator, stage.model.discriminator
    for key, moves_generator in (("sovits.discriminator", False), ("sovits.adversarial", True),
                                 ("sovits.feature", True), ("sovits.mel", True)):
        stage.model.zero_grad(set_to_none=True)
        stage.model(stage.batches(0)[0])[key].backward()
        g = [p.grad for p in generator.dec.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        d = [p.grad for p in discriminator.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
        assert bool(g) == moves_generator and bool(d) == (not moves_generator), key
    # frozen quantiser, as the official freeze_quantizer
    assert not any(p.requires_grad for p in generator.quantizer.parameters())
    groups = stage.parameter_groups(stage.model, 1e-4)
    assert [g["lr"] for g in groups] == [1e-4, pytest.approx(4e-5)]
    slow = {id(p) for p in generator.enc_p.mrte.parameters()}
    assert slow <= {id(p) for p in groups[1]["params"]}
    assert sum(len(g["params"]) for g in groups) == sum(1 for p in stage.model.parameters() if p.requires_grad)


def test_sovits_stage_trains_through_the_loop(features, tmp_path):
    lines, _ = features
    stage = SoVITSStage(tiny_generator(), TinyDiscriminator(), short(lines), batch_size=1, seed=0)
    config = TrainingConfig()
    config.schedule.epochs, config.schedule.batch_size, config.schedule.learning_rate = 6, 1, 2e-3
    config.schedule.milestones = []
    config.checkpoints.validate_every_steps = 6
    run = TrainingRun.create(tmp_path, "sovits", config, SOVITS_LOSSES)
    fixed = collate([stage.items[0]], 123)
    with torch.no_grad():
        stage.model.eval()
        before = float(stage.model(fixed)["sovits.mel"])
    result = train_loop(stage, run, config=config, handle_sigint=False)
    assert result.stopped == "finished" and result.step == 12
    with torch.no_grad():
        stage.model.eval()
        after = float(stage.model(fixed)["sovits.mel"])
    assert after < before
    assert run.checkpoints.latest() is not None


def tiny_t2s(seed: int = 0):
    from voxmith.engines.gpt_sovits.t2s import T2SConfig, Text2SemanticModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Text2SemanticModel(T2SConfig(hidden_dim=32, heads=2, layers=1, phoneme_vocab_size=732))


def test_both_stages_in_one_run_sovits_first_then_gpt(features, tmp_path):
    from voxmith.engines.gpt_sovits.finetune import (LOSSES, GptSovitsTrainingTask, fine_tuned_models, gpt_collate,
                                                     stage_epochs)

    assert stage_epochs(23) == (8, 15) and stage_epochs(3) == (1, 2) and stage_epochs(2) == (1, 1)
    lines, _ = features
    lines = short(lines)
    task = GptSovitsTrainingTask(tiny_generator(), TinyDiscriminator(), tiny_t2s(), lines, (), batch_size=2,
                                 seed=0, epochs=3)
    assert [b["stage"] for e in range(3) for b in task.batches(e)] == ["sovits", "gpt", "gpt"]
    config = TrainingConfig()
    config.schedule.epochs, config.schedule.batch_size, config.schedule.learning_rate = 3, 2, 3e-3
    config.schedule.milestones = []
    run = TrainingRun.create(tmp_path, "both", config, LOSSES)
    gpt_before = {k: v.clone() for k, v in task.model.gpt.state_dict().items()}
    sovits_before = {k: v.clone() for k, v in task.model.sovits.generator.state_dict().items()}
    with torch.no_grad():
        ce_before = float(task.model.gpt(gpt_collate(lines))["gpt.ce"])
    result = train_loop(task, run, config=config, handle_sigint=False)
    assert result.stopped == "finished" and result.step == 3
    with torch.no_grad():
        task.model.eval()
        ce_after = float(task.model.gpt(gpt_collate(lines))["gpt.ce"])
    assert ce_after < ce_before
    assert any(not torch.equal(v, gpt_before[k]) for k, v in task.model.gpt.state_dict().items())
    assert any(not torch.equal(v, sovits_before[k]) for k, v in task.model.sovits.generator.state_dict().items()
               if k.startswith("dec."))
    rows = (run.folder / "metrics.csv").read_text().splitlines()
    assert "sovits.mel_loss" in rows[0] and "gpt.ce_loss" in rows[0]
    # the checkpoint makes inference models (no posterior encoder)
    from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig

    state = task.model.state_dict()
    sovits, t2s = SoVITS(SoVITSConfig(version="v2", filter_channels=32, n_heads=2, n_layers=1,
                                      upsample_initial_channel=32)), tiny_t2s(5)
    fine_tuned_models(state, sovits, t2s)
    assert torch.equal(t2s.bert_proj.weight, task.model.gpt.model.bert_proj.weight)
    assert torch.equal(sovits.dec.conv_pre.weight, task.model.sovits.generator.dec.conv_pre.weight)


def test_engine_trains_a_dataset_and_speaks_with_the_result(demo_files, tmp_path):
    import numpy as np

    from tests.test_gpt_sovits_engine import tiny_models
    from voxmith.audio import load_audio
    from voxmith.engines.base import Finetune, FinetuneSpec
    from voxmith.engines.gpt_sovits.engine import GptSovitsEngine, GptSovitsModels, GptSovitsSettings

    base = tiny_models(3)
    engine = GptSovitsEngine.with_models(GptSovitsModels("v2", base.t2s, tiny_generator(7).eval(), base.hubert, 30))
    engine._training_discriminator = lambda version: TinyDiscriminator()  # the real one: seconds per pass
    # short clips cut from the demo voice keep the tiny run fast
    import soundfile as sf

    clips = []
    for i, (path, text) in enumerate(((demo_files[0], "Printing, in the only sense."),
                                      (demo_files[1], "Differs from most."))):
        audio = load_audio(path)
        clip = tmp_path / f"line{i}.wav"
        sf.write(clip, audio.samples[: int(1.6 * audio.sample_rate_hz)], audio.sample_rate_hz)
        clips.append(TrainingLine(clip, text))
    spec = FinetuneSpec(train=tuple(clips), validation=(), batch_size=2, seed=0, cache_dir=tmp_path / "cache",
                        epochs=2)
    task = engine.training_task(spec)
    assert task.sovits_epochs == 1 and task.gpt_epochs == 1
    assert list((tmp_path / "cache").rglob("*.npz"))  # the features were cached for the next run
    config = TrainingConfig()
    config.schedule.epochs, config.schedule.batch_size, config.schedule.learning_rate = 2, 2, 3e-3
    config.schedule.milestones = []
    run = TrainingRun.create(tmp_path, "ft", config, task.losses)
    assert train_loop(task, run, config=config, handle_sigint=False).stopped == "finished"
    state = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
    variant = engine.with_finetune(Finetune("ft-2", "run 'ft', step 2", lambda: state))
    assert variant.models("v2").t2s is not engine.models("v2").t2s
    # a 4 s reference with its words (no Whisper pass: the engine's own tests cover the reference choice)
    conditioning = {"reference_16k": load_audio(demo_files[0], sample_rate_hz=16000).samples[:64000],
                    "reference_32k": load_audio(demo_files[0], sample_rate_hz=32000).samples[:128000],
                    "reference_text": np.asarray("Printing, in the only sense with which we are at present"),
                    "reference_language": np.asarray("en")}
    settings = GptSovitsSettings(aux_references=0, t2s_precision="float32")
    stock = engine.synthesize("Hello there.", conditioning, settings, seed=2)[0]
    tuned = variant.synthesize("Hello there.", conditioning, settings, seed=2)[0]
    again = variant.synthesize("Hello there.", conditioning, settings, seed=2)[0]
    np.testing.assert_array_equal(tuned.samples, again.samples)
    assert not np.array_equal(stock.samples, tuned.samples)
    # the stock models are untouched by training and by the variant
    np.testing.assert_array_equal(engine.synthesize("Hello there.", conditioning, settings, seed=2)[0].samples,
                                  stock.samples)
    from voxmith.errors import VoxmithError

    with pytest.raises(VoxmithError, match="two stages"):
        engine.training_task(FinetuneSpec(tuple(clips), (), 2, 0, tmp_path / "cache", epochs=1))
    with pytest.raises(VoxmithError, match="model_version=v2"):
        variant.synthesize("Hello.", conditioning, GptSovitsSettings(model_version="v2ProPlus"), seed=0)
    with pytest.raises(VoxmithError, match="hold no GPT-SoVITS"):
        engine.load_finetune(Finetune("x", "x", lambda: {"w": torch.zeros(1)}))


def test_the_official_pretrained_discriminator_is_used_when_present(tmp_path):
    from voxmith.engines.gpt_sovits import weights
    from voxmith.engines.gpt_sovits.engine import GptSovitsEngine
    from voxmith.engines.gpt_sovits.sovits_training import MultiPeriodDiscriminator, discriminator_weight_norm_form
    from voxmith.errors import VoxmithError

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(9)
        official = MultiPeriodDiscriminator("v2")
    path = tmp_path / "models" / "gpt-sovits" / weights.PRETRAINED_DISCRIMINATOR  # the workspace models folder
    path.parent.mkdir(parents=True)
    torch.save({"weight": discriminator_weight_norm_form(official.state_dict())}, path)
    engine = GptSovitsEngine(models_dir=tmp_path / "models")
    loaded = engine._training_discriminator("v2")
    for (name, a), b in zip(official.state_dict().items(), loaded.state_dict().values()):
        torch.testing.assert_close(b, a, msg=name)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(VoxmithError, match="not a GPT-SoVITS v2 discriminator"):
        engine._training_discriminator("v2")


def test_a_run_quit_after_the_sovits_stage_resumes_into_the_gpt_stage_as_if_never_stopped(features, tmp_path):
    import queue

    from voxmith.engines.gpt_sovits.finetune import LOSSES, GptSovitsTrainingTask

    lines = short(features[0], 1.0)

    def task():
        with torch.random.fork_rng(devices=[]):  # the same start for every run
            torch.manual_seed(0)
            discriminator = TinyDiscriminator()
        return GptSovitsTrainingTask(tiny_generator(), discriminator, tiny_t2s(), lines, (), batch_size=2,
                                     seed=0, epochs=3)

    config = TrainingConfig()
    config.schedule.epochs, config.schedule.batch_size, config.schedule.learning_rate = 3, 2, 3e-3
    config.schedule.milestones = []
    straight_task = task()
    straight = TrainingRun.create(tmp_path, "straight", config, LOSSES)
    train_loop(straight_task, straight, config=config, handle_sigint=False)

    run = TrainingRun.create(tmp_path, "stopped", config, LOSSES)
    commands: queue.Queue = queue.Queue()

    def on_progress(event):
        if event.stage == "training" and event.done == 1:  # the SoVITS epoch is done
            commands.put("quit")

    first = train_loop(task(), run, config=config, commands=commands, progress=on_progress, handle_sigint=False)
    assert first.stopped == "quit" and first.step == 1
    torch.manual_seed(123)  # another RNG state: the checkpoint must restore everything
    resumed = task()
    second = train_loop(resumed, run, config=config, handle_sigint=False)
    assert second.resumed_from == 1 and second.step == 3
    for (name, a), b in zip(straight_task.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def tiny_pro_generator(seed: int = 0, with_posterior: bool = True):
    """A tiny v2ProPlus SoVITS (speaker-embedding input, the v2ProPlus generator shape)."""
    from voxmith.engines.gpt_sovits.sovits import SoVITS, SoVITSConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SoVITS(SoVITSConfig(version="v2ProPlus", p_dropout=0.0, gin_channels=64, filter_channels=32, n_heads=2,
                                   n_layers=1, upsample_initial_channel=32, upsample_kernel_sizes=(20, 16, 8, 2, 2),
                                   with_posterior=with_posterior))


def tiny_speaker_verifier(seed: int = 0):
    """The real speaker-verification path (Kaldi fbank -> ERes2NetV2) at toy size, its 1280 pooled values
    repeated to the 20480 the SoVITS expects."""
    from voxmith.engines.gpt_sovits.speaker_verification import ERes2NetV2, ERes2NetV2Config, SpeakerVerifier

    class Tiny(SpeakerVerifier):
        def embed(self, wav_16k):
            return super().embed(wav_16k).repeat_interleave(16, dim=1)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ERes2NetV2(ERes2NetV2Config(num_blocks=(1, 1, 1, 1), m_channels=8, base_width=16, scale=2,
                                            expansion=2))
    assert model.config.pooled_dim * 16 == 20480
    return Tiny(model)


def short_clips(demo_files, folder, seconds=1.6):
    import soundfile as sf

    from voxmith.audio import load_audio

    clips = []
    for i, (path, text) in enumerate(((demo_files[0], "Printing, in the only sense."),
                                      (demo_files[1], "Differs from most."))):
        audio = load_audio(path)
        clip = folder / f"line{i}.wav"
        sf.write(clip, audio.samples[: int(seconds * audio.sample_rate_hz)], audio.sample_rate_hz)
        clips.append(TrainingLine(clip, text))
    return clips


def test_v2proplus_fine_tunes_with_each_lines_speaker_embedding_and_speaks(demo_files, tmp_path):
    import numpy as np

    from tests.test_gpt_sovits_engine import tiny_models
    from voxmith.audio import load_audio
    from voxmith.engines.base import Finetune, FinetuneSpec
    from voxmith.engines.gpt_sovits.engine import GptSovitsEngine, GptSovitsModels, GptSovitsSettings
    from voxmith.engines.gpt_sovits.sovits_finetune import SoVITSStage
    from voxmith.errors import VoxmithError

    base = tiny_models(3)
    verifier = tiny_speaker_verifier(1)
    engine = GptSovitsEngine.with_models(GptSovitsModels("v2ProPlus", base.t2s, tiny_pro_generator(7).eval(),
                                                         base.hubert, 30, verifier))
    asked = []
    engine._training_discriminator = lambda version: asked.append(version) or TinyDiscriminator()
    clips = short_clips(demo_files, tmp_path)
    spec = FinetuneSpec(train=tuple(clips), validation=(), batch_size=2, seed=0, cache_dir=tmp_path / "cache",
                        epochs=2, settings={"model_version": "v2ProPlus"})
    task = engine.training_task(spec)
    assert asked == ["v2ProPlus"]
    cached = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(cached) == 2
    with np.load(cached[0]) as data:  # the embedding is cached with the other features
        assert data["sv"].shape == (20480,) and np.isfinite(data["sv"]).all()
    first, second = task.lines
    assert not np.allclose(first.sv, second.sv)  # one per line, from its own audio
    assert task.sovits_items[0]["sv"].shape == (20480,)
    config = TrainingConfig()
    config.schedule.epochs, config.schedule.batch_size, config.schedule.learning_rate = 2, 2, 3e-3
    config.schedule.milestones = []
    run = TrainingRun.create(tmp_path, "pro", config, task.losses)
    sv_before = task.model.sovits.generator.sv_emb.weight.detach().clone()
    assert train_loop(task, run, config=config, handle_sigint=False).stopped == "finished"
    assert not torch.equal(task.model.sovits.generator.sv_emb.weight, sv_before)  # the embedding path trains
    state = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
    variant = engine.with_finetune(Finetune("pro-2", "run 'pro', step 2", lambda: state,
                                            config={"engine": {"settings": {"model_version": "v2ProPlus"}}}))
    conditioning = {"reference_16k": load_audio(demo_files[0], sample_rate_hz=16000).samples[:64000],
                    "reference_32k": load_audio(demo_files[0], sample_rate_hz=32000).samples[:128000],
                    "reference_text": np.asarray("Printing, in the only sense with which we are at present"),
                    "reference_language": np.asarray("en")}
    settings = GptSovitsSettings(aux_references=0, t2s_precision="float32", model_version="v2ProPlus")
    stock = engine.synthesize("Hello there.", conditioning, settings, seed=2)[0]
    # a voice using the run speaks its version with the default settings
    tuned = variant.synthesize("Hello there.", conditioning, GptSovitsSettings(aux_references=0,
                                                                             t2s_precision="float32"), seed=2)[0]
    assert tuned.details["version"] == "v2ProPlus" and not np.array_equal(stock.samples, tuned.samples)
    assert variant.resolved_settings(GptSovitsSettings()).model_version == "v2ProPlus"
    with pytest.raises(VoxmithError, match="model_version=v2ProPlus"):
        variant.synthesize("Hello.", conditioning, GptSovitsSettings(model_version="v2Pro"), seed=0)
    # what stays unsupported is refused in words
    for version, message in (("v4", "does not fine-tune GPT-SoVITS v4"), ("v9", "Unknown GPT-SoVITS version")):
        with pytest.raises(VoxmithError, match=message):
            engine.training_task(FinetuneSpec(tuple(clips), (), 2, 0, tmp_path / "cache", epochs=2,
                                              settings={"model_version": version}))
    without_sv = GptSovitsEngine.with_models(GptSovitsModels("v2ProPlus", base.t2s, tiny_pro_generator(7).eval(),
                                                             base.hubert, 30, None))
    with pytest.raises(VoxmithError, match="speaker-verification model"):
        without_sv.training_task(spec)
    v2_lines = training_data.load_lines(clips, tmp_path / "cache", base.hubert, base.sovits)
    with pytest.raises(VoxmithError, match="speaker-verification embedding"):
        SoVITSStage(tiny_pro_generator(), TinyDiscriminator(), v2_lines, batch_size=2, seed=0)
