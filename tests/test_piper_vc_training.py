"""piper-vc fine-tuning on a tiny real dataset: the demo clips (LJ Speech) cut at pauses and
transcribed by Whisper, trained through the engine-independent loop."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from voxmith.datasets import PrepareSettings, prepare_dataset
from voxmith.datasets.store import Dataset
from voxmith.engines import Finetune, FinetuneSpec, TrainingLine
from voxmith.engines.piper_vc import PiperVCEngine
from voxmith.engines.piper_vc import training as vc_training
from voxmith.errors import VoxmithError
from voxmith.training import TrainingRun, defaults_for, train_loop

TEXT = "The small boat drifted slowly towards the harbour."


@pytest.fixture(scope="module")
def dataset_lines(tmp_path_factory, demo_files):
    """(train, validation) lines: the two demo clips cut into 2-5 s segments with transcripts;
    the last segment is held out (the dataset's own split needs 10 segments)."""
    folder = tmp_path_factory.mktemp("ds") / "demo"
    dataset = Dataset("demo", folder)
    prepare_dataset(dataset, demo_files, PrepareSettings(min_seconds=2.0, max_seconds=5.0))
    lines = [TrainingLine(folder / s["file"], s["transcript"]) for s in dataset.load()["segments"]
             if s.get("split") in ("train", "validation")]
    assert len(lines) >= 4, lines
    return tuple(lines[:-1]), tuple(lines[-1:])


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def engine() -> PiperVCEngine:
    return PiperVCEngine(device="cpu")


def spec_for(lines, cache_dir, seed=0) -> FinetuneSpec:
    train, validation = lines
    return FinetuneSpec(train=train, validation=validation, batch_size=2, seed=seed, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, engine, dataset_lines, cache_dir):
    """A task trained for a few dozen steps through train_loop, and its run."""
    events, curves = [], []
    measure_curve = vc_training.enrollment.base_curve
    vc_training.enrollment.base_curve = lambda voice=None: curves.append(voice) or measure_curve(voice)
    try:
        task = engine.training_task(spec_for(dataset_lines, cache_dir), progress=events.append)
    finally:
        vc_training.enrollment.base_curve = measure_curve
    assert not curves  # a dataset fine-tune speaks at joe's own pace: his rate curve is not needed
    stages = {e.stage for e in events}
    assert {"analysing lines", "choosing warp", "aligning lines"} <= stages, stages
    initial_state = {k: v.clone() for k, v in task.model.state_dict().items()}
    initial_val = task.validation_loss()
    config = defaults_for(len(dataset_lines[0]), epochs=12, dataset="demo", engine="piper-vc")
    config.schedule.learning_rate = 2e-3
    config.schedule.grad_accumulation = 1
    config.schedule.scheduler = "cosine"
    config.checkpoints.validate_every_steps = 4
    run = TrainingRun.create(tmp_path_factory.mktemp("training"), "demo-ft", config)
    result = train_loop(task, run, config=config, handle_sigint=False)
    return task, run, result, initial_state, initial_val


def as_finetune(state, key) -> Finetune:
    return Finetune(key=key, description=f"test {key}", load_state=lambda: state)


def speak(engine, cond, seed=3):
    return engine.synthesize(TEXT, cond, engine.settings_class(), seed=seed)[0].samples


def base_conditioning(task) -> dict:
    """A voice conditioning whose conversion is the task's base (what enrollment would give)."""
    cond = task.model.base.params().to_arrays(prefix="conv.")
    cond["rate"] = np.asarray(1.0)
    return cond


def test_loss_decreases_through_the_training_loop(trained, dataset_lines):
    task, run, result, _, initial_val = trained
    assert result.stopped == "finished" and result.step >= 24
    rows = run.read_metrics()
    losses = [r["cepstral_loss"] for r in rows]
    # Two epochs at each end (the same lines), so batch composition does not enter the comparison.
    per_epoch = len(task.batches(0))
    first, last = np.mean(losses[:2 * per_epoch]), np.mean(losses[-2 * per_epoch:])
    assert last < 0.9 * first, losses
    vals = [r["val_loss"] for r in rows if r["val_loss"] == r["val_loss"]]
    assert vals and min(vals) < initial_val, (initial_val, vals)
    assert not task.validation_is_training  # the dataset had validation lines


def test_batches_are_seeded_per_epoch_and_cover_every_line(trained, dataset_lines):
    task = trained[0]
    a, b, c = task.batches(0), task.batches(0), task.batches(1)
    assert all(torch.equal(x["inputs"], y["inputs"]) for x, y in zip(a, b))
    frames = lambda bs: sorted(int(row.sum()) for batch in bs for row in batch["speech"])  # noqa: E731
    assert frames(a) == frames(c) and len(frames(a)) == len(dataset_lines[0])
    assert task.model(a[0])["cepstral"].ndim == 0


def test_features_are_cached_and_reused(engine, dataset_lines, cache_dir, trained, monkeypatch):
    folder = vc_training.cache_folder(spec_for(dataset_lines, cache_dir), engine.cache_key())
    lines = sorted((folder / "lines").glob("*.npz"))
    assert len(lines) == len(dataset_lines[0]) + len(dataset_lines[1])
    assert len(list(folder.glob("base-*.npz"))) == 1
    mtimes = [p.stat().st_mtime_ns for p in lines]

    def no_analysis(*args, **kwargs):
        raise AssertionError("cached features were recomputed")
    monkeypatch.setattr(vc_training.parallel, "parallel_utterance", no_analysis)
    monkeypatch.setattr(vc_training.enrollment, "fit_parallel", no_analysis)
    again = engine.training_task(spec_for(dataset_lines, cache_dir, seed=5))
    assert [p.stat().st_mtime_ns for p in lines] == mtimes
    first = trained[0]
    assert all(torch.equal(a.inputs, b.inputs) and torch.equal(a.target_z, b.target_z)
               for a, b in zip(again.train_lines, first.train_lines))
    for name, value in again.model.base.state_dict().items():
        assert torch.equal(value, first.model.base.state_dict()[name]), name


def test_untrained_model_is_the_enrolled_conversion(engine, trained):
    task, _, _, initial_state, _ = trained
    cond = base_conditioning(task)
    stock = speak(engine, cond)
    assert np.array_equal(speak(engine.with_finetune(as_finetune(initial_state, "step0")), cond),
                          stock)  # zero residual: bit-exact


def test_finetune_changes_audio_deterministically_and_none_restores_stock(engine, trained, demo_files):
    task, run, _, _, _ = trained
    cond = base_conditioning(task)
    stock = speak(engine, cond)
    state = run.checkpoints.load(run.checkpoints.latest())["model"]
    variant = engine.with_finetune(as_finetune(state, "latest"))
    assert variant is engine.with_finetune(as_finetune(state, "latest")) and variant.stock is engine
    assert variant.with_finetune(None) is engine and variant.cache_key() == engine.cache_key()
    tuned = speak(variant, cond)
    assert tuned.shape == stock.shape and not np.allclose(tuned, stock, atol=1e-3)
    assert np.array_equal(speak(variant, cond), tuned)
    # A fresh engine loading the checkpoint (as the studio does) speaks the same samples.
    fresh = PiperVCEngine(device="cpu")
    reloaded = as_finetune(run.checkpoints.load(run.checkpoints.latest())["model"], "reloaded")
    assert np.array_equal(speak(fresh.with_finetune(reloaded), cond), tuned)
    # The checkpoint carries its base: a conditioning with another conversion changes nothing.
    other = dict(cond)
    other["conv.warp"] = np.asarray(float(cond["conv.warp"]) + 0.1)
    assert np.array_equal(speak(variant, other), tuned)
    assert np.array_equal(speak(engine, cond), stock)  # the stock engine never changed


def test_bad_weights_and_bad_specs_are_refused(engine, dataset_lines, cache_dir, tmp_path):
    with pytest.raises(VoxmithError, match="do not fit the piper-vc engine"):
        engine.with_finetune(as_finetune({"gpt.weight": torch.zeros(2)}, "alien"))
    with pytest.raises(VoxmithError, match="no training lines"):
        engine.training_task(FinetuneSpec(train=(), validation=(), batch_size=1, seed=0, cache_dir=cache_dir))
    missing = (TrainingLine(tmp_path / "gone.wav", "some words here"),)
    with pytest.raises(VoxmithError, match="cannot be read"):
        engine.training_task(FinetuneSpec(train=missing, validation=(), batch_size=1, seed=0, cache_dir=cache_dir))


# Enrollment-time adaptation: the same residual network trained on the voice's own clips.

@pytest.fixture(scope="module")
def enrolled_demo(engine, demo_files):
    """(enrollment result, conditioning) for the demo clips, through the engine's own path."""
    from voxmith.audio import load_audio, to_mono
    from voxmith.engines.piper_vc.conversion import DEFAULT_COV_MIX
    from voxmith.engines.piper_vc.enrollment import enroll

    clips = [load_audio(p) for p in demo_files]
    result = enroll([(to_mono(c.samples), c.sample_rate_hz) for c in clips], ridge_mix=1.0,
                    cov_mix=DEFAULT_COV_MIX)
    events = []
    cond = engine.conditioning_from(result, progress=events.append)
    assert "adapting" in {e.stage for e in events}
    return result, cond


def speak_with(engine, cond, **settings):
    return engine.synthesize(TEXT, cond, engine.settings_class.from_dict(settings), seed=3)[0].samples


def test_enrollment_trains_the_residual_network(enrolled_demo):
    from voxmith.engines.piper_vc import adaptation

    result, cond = enrolled_demo
    assert cond[adaptation.ARCH_KEY].tolist() == [96, 3, 5]
    assert float(cond[adaptation.SCALE_KEY]) in adaptation.SCALE_GRID  # the intelligibility check ran
    out = cond[adaptation.PREFIX + "out.weight"]
    assert out.dtype == np.float32 and np.abs(out).max() > 0  # moved from its zero start
    # It fits the voice's own aligned frames better than the analytic conversion (step 0).
    lines = adaptation.aligned_lines(result.utterances, result.params)
    assert lines
    batch = vc_training.collate(lines)
    trained = adaptation.from_conditioning(cond, result.params)
    untrained = adaptation.train_residual(result.utterances, result.params, adaptation.AdaptConfig(steps=1,
                                                                                                 learning_rate=0.0))
    with torch.no_grad():
        assert float(trained.loss(batch)) < 0.95 * float(untrained.loss(batch))


def test_postnet_mix_scales_the_network_and_zero_is_the_analytic_conversion(engine, enrolled_demo, tmp_path):
    _, enrolled = enrolled_demo
    analytic = {k: v for k, v in enrolled.items() if not k.startswith("postnet")}
    stock = speak_with(engine, analytic)
    assert np.array_equal(speak_with(engine, enrolled, postnet_mix=0.0), stock)
    # A voice whose check refused the network speaks the analytic conversion.
    assert np.array_equal(speak_with(engine, dict(enrolled, postnet_scale=np.asarray(0.0))), stock)
    cond = dict(enrolled, postnet_scale=np.asarray(1.0))  # whatever the demo voice's check chose
    adapted = speak_with(engine, cond)
    half = speak_with(engine, cond, postnet_mix=0.5)
    assert adapted.shape == stock.shape and not np.allclose(adapted, stock, atol=1e-3)
    assert not np.allclose(half, adapted, atol=1e-3)
    assert np.array_equal(speak_with(engine, cond), adapted)  # deterministic
    # The studio caches conditioning as npz: the reloaded arrays speak the same samples.
    np.savez(tmp_path / "cond.npz", **cond)
    with np.load(tmp_path / "cond.npz") as data:
        assert np.array_equal(speak_with(engine, {k: data[k] for k in data.files}), adapted)
    cand = engine.synthesize(TEXT, cond, engine.settings_class(), seed=3)[0]
    assert cand.details["postnet_mix"] == 1.0
    with pytest.raises(VoxmithError, match="postnet_mix"):
        engine.settings_class.from_dict({"postnet_mix": 3.0}).validate()


class ScriptedListener:
    """A speaker and a transcriber for the guard: each rendering is remembered, and what is heard
    is the sentence with `garbled(strengths)` of its words replaced (the base voice: none)."""

    def __init__(self, garbled):
        self.garbled, self.said = garbled, []

    def speak(self, text, seed, strengths):
        self.said.append((text, seed, strengths))
        return np.full(4, len(self.said), np.float32)  # nonzero: the guard joins sentences with silence

    def transcribe(self, samples, sample_rate_hz):
        self.heard = getattr(self, "heard", 0) + 1
        out = []
        for index in [int(v) for k, v in enumerate(samples) if v and (k == 0 or samples[k - 1] != v)]:
            text, _, strengths = self.said[index - 1]
            words = text.split()
            wrong = 0 if strengths is None else min(self.garbled(strengths), len(words))
            out += ["blah"] * wrong + words[wrong:]
        return " ".join(out)


def test_guard_backs_off_in_order_until_heard_and_records_why():
    from voxmith.engines.piper_vc import guard

    sentences = ("one two three four five six", "seven eight nine ten eleven twelve")
    # The warp is at fault: 3 words lost per sentence until it is at most half.
    listener = ScriptedListener(lambda s: 3 if s.warp > 0.5 else 0)
    result = guard.guard(listener.speak, guard.Strengths(phones=0.0), sentences=sentences, tolerance=2,
                         transcribe=listener.transcribe)
    assert result.strengths == guard.Strengths(network=0.0, ridge=0.0, warp=0.5, statistics=1.0, phones=0.0)
    assert [s.split()[0] for s in result.steps] == ["network", "network", "ridge", "warp"]
    # A check stops at the first sentence that puts it over the tolerance: the rest cannot pass it.
    assert "at least 3 word errors on the check sentences, 0 for the base voice (tolerance 2)" in result.steps[0]
    assert (result.base_errors, result.errors, result.words) == (0, 0, 12)
    # Sentence k is said at seed k, the base voice (strengths None) first, every sentence of it.
    assert [(seed, s) for _, seed, s in listener.said[:3]] == [(0, None), (1, None), (0, guard.Strengths(phones=0.0))]
    assert len(listener.said) == 2 + 4 * 1 + 2  # base, four failed checks cut short, the passing one
    assert listener.heard == len(listener.said)  # one Whisper pass per sentence
    # Heard joined (guard.JOIN_WINDOW_S), each check is one Whisper pass over all its sentences;
    # here the verdict is the same.
    joined = ScriptedListener(lambda s: 3 if s.warp > 0.5 else 0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(guard, "JOIN_WINDOW_S", 28.0)
        together = guard.guard(joined.speak, guard.Strengths(phones=0.0), sentences=sentences, tolerance=2,
                               transcribe=joined.transcribe)
    assert together.strengths == result.strengths and joined.heard == 1 + 4 + 1
    assert "6 word errors on the check sentences, 0 for the base voice (tolerance 2)" in together.steps[0]
    summary = guard.summary(result.to_conditioning())
    assert summary["reduced"] == result.steps and summary["strengths"]["warp"] == 0.5
    # Within tolerance nothing is reduced; past every step everything is, and nothing else.
    lenient = guard.guard(listener.speak, guard.Strengths(), sentences=sentences, tolerance=6,
                          transcribe=listener.transcribe)
    assert lenient.strengths == guard.Strengths() and lenient.steps == []
    # The phone deviations, the newest component, go first: a voice they make unintelligible keeps
    # everything else.
    phoned = ScriptedListener(lambda s: 3 if s.phones > 0 else 0)
    first = guard.guard(phoned.speak, guard.Strengths(), sentences=sentences, tolerance=2,
                        transcribe=phoned.transcribe)
    assert first.strengths == guard.Strengths(phones=0.0) and [s.split()[0] for s in first.steps] == ["phones"]
    deaf = ScriptedListener(lambda s: 6)
    strict = guard.guard(deaf.speak, guard.Strengths(), sentences=sentences, transcribe=deaf.transcribe)
    assert strict.strengths == guard.Strengths(0.0, 0.0, 0.0, 0.0, 0.0) and len(strict.steps) == 8
    assert [s.split()[0] for s in strict.steps][:2] == ["phones", "network"]


def test_a_component_the_ladder_took_first_comes_back_where_the_kept_strengths_allow_it():
    from voxmith.engines.piper_vc import guard

    sentences = ("one two three four five six", "seven eight nine ten eleven twelve")
    # The phone deviations cost words only on top of the full statistics.
    listener = ScriptedListener(lambda s: 3 if s.phones > 0 and s.statistics > 0.5 else 0)
    checked = guard.guard(listener.speak, guard.Strengths(network=0.0), sentences=sentences, tolerance=2,
                          transcribe=listener.transcribe)
    assert checked.strengths == guard.Strengths(network=0.0, phones=0.0)
    weighed = guard.GuardResult(dataclasses.replace(checked.strengths, statistics=0.5), checked.base_errors, checked.errors,
                                checked.words, list(checked.steps), checked.tolerance, natural="statistics 1 -> 0.5")
    back = guard.restored(listener.speak, weighed, "phones", (1.0, 0.5), sentences=sentences,
                          transcribe=listener.transcribe)
    assert back.strengths == guard.Strengths(network=0.0, statistics=0.5, phones=1.0)
    # Recorded after the weighing's record, not among the reductions.
    assert back.steps == checked.steps and back.passed
    assert back.natural.startswith("statistics 1 -> 0.5; then phones 0 -> 1: intelligible at the kept strengths (0 word")
    # Where they still cost words, nothing changes; nor where they are there already.
    assert guard.restored(listener.speak, checked, "phones", (1.0,), sentences=sentences,
                          transcribe=listener.transcribe) == checked
    said = len(listener.said)
    assert guard.restored(listener.speak, back, "phones", (1.0, 0.5), sentences=sentences) is back
    assert len(listener.said) == said
    # The strongest share that is intelligible is taken.
    halfway = ScriptedListener(lambda s: 3 if s.phones > 0.5 and s.statistics > 0.5 else 0)
    half = guard.restored(halfway.speak, checked, "phones", (1.0, 0.5), sentences=sentences,
                          transcribe=halfway.transcribe)
    assert half.strengths == guard.Strengths(network=0.0, phones=0.5) and half.natural.startswith("then phones 0 -> 0.5")
    # The engine's shares go down to a quarter (where neither full nor half share passes).
    quarter = ScriptedListener(lambda s: 3 if s.phones > 0.25 and s.statistics > 0.5 else 0)
    least = guard.restored(quarter.speak, checked, "phones", guard.PHONE_RESTORE_SHARES, sentences=sentences,
                           transcribe=quarter.transcribe)
    assert guard.PHONE_RESTORE_SHARES[0] == 1.0 and least.strengths.phones == 0.25


def test_gentler_strengths_are_kept_when_they_score_better_on_similarity_and_naturalness():
    from voxmith.engines.piper_vc import guard

    sentences = ("one two three", "four five six")
    checked = guard.GuardResult(guard.Strengths(network=1.0, warp=0.5, phones=0.0), base_errors=1, errors=3, words=6,
                                steps=["warp 1 -> 0.5: ..."], tolerance=2)
    # Every candidate is weaker in every component than the guard's strengths (so never heard again).
    candidates = guard.gentler(checked.strengths)
    assert candidates == [guard.Strengths(network=0.0, warp=0.5, phones=0.0),
                          guard.Strengths(network=0.0, ridge=0.0, warp=0.0, statistics=0.5, phones=0.0)]
    assert all(getattr(c, name) <= getattr(checked.strengths, name) for c in candidates for name in guard.KEYS)
    assert guard.gentler(guard.Strengths(0.0, 0.0, 0.0, 0.5, 0.0)) == []
    assert guard.gentler(guard.Strengths(0.0, 0.0, 0.0, 0.0, 0.0)) == []
    # The phone deviations keep the share the guard left them.
    assert guard.gentler(guard.Strengths(network=0.0, warp=0.5)) == [
        guard.Strengths(network=0.0, ridge=0.0, warp=0.0, statistics=0.5, phones=1.0)]
    # score = (similarity, naturalness) of one clip; the clip says which strengths made it.
    table = {checked.strengths: (0.70, 2.0), candidates[0]: (0.66, 3.0), candidates[1]: (0.60, 3.5)}
    made = []

    def speak(text, seed, strengths):
        made.append((text, seed, strengths))
        return np.full(3, len(made), np.float32)

    def score(samples):
        return table[made[int(samples[0]) - 1][2]]

    # 0.66 + 0.08 x 3 = 0.90 beats 0.70 + 0.16 = 0.86 and 0.60 + 0.28 = 0.88
    chosen = guard.prefer_natural(speak, checked, score, sentences=sentences, weight=0.08)
    assert chosen.strengths == candidates[0] and chosen.steps == checked.steps  # back-offs only
    assert chosen.natural.startswith("network 1 -> 0: more natural (naturalness 2.00 -> 3.00, similarity 0.700 -> 0.660")
    assert (chosen.errors, chosen.base_errors, chosen.tolerance) == (3, 1, 2) and checked.strengths.network == 1.0
    assert [(seed, s) for _, seed, s in made[:2]] == [(0, checked.strengths), (1, checked.strengths)]  # sentence k at seed k
    summary = guard.summary(chosen.to_conditioning())
    assert summary["strengths"]["network"] == 0.0 and summary["natural"] == chosen.natural
    assert summary["reduced"] == checked.steps
    # Similarity alone (weight 0, no collapse bound) keeps the guard's own strengths, and says so.
    kept = guard.prefer_natural(speak, checked, score, sentences=sentences, weight=0.0, collapse=np.inf)
    assert kept.strengths == checked.strengths and kept.steps == checked.steps
    assert kept.natural.startswith("kept: the intelligible strengths scored best")
    # Naturalness 1.5 below the most natural candidate's has collapsed: never kept for similarity, and
    # the next best by the weighed score (not simply the most natural) is taken.
    collapsed = guard.prefer_natural(speak, checked, score, sentences=sentences, weight=0.0, collapse=0.6)
    assert collapsed.strengths == candidates[0]
    assert "naturalness collapsed, more than 0.6 below the most natural candidate's" in collapsed.natural
    assert guard.prefer_natural(speak, checked, score, sentences=sentences, weight=0.0,
                                collapse=1.0).strengths == candidates[0]  # 2.0 is 1.5 below 3.5: still out
    assert guard.prefer_natural(speak, checked, score, sentences=sentences, weight=0.0,
                                collapse=1.5).strengths == checked.strengths  # exactly at the bound: allowed
    nothing = guard.GuardResult(guard.Strengths(0.0, 0.0, 0.0, 0.5, 0.0), 0, 0, 6)
    assert guard.prefer_natural(speak, nothing, score).natural == "kept: nothing gentler to weigh"
    assert "natural" not in guard.summary(checked.to_conditioning())  # enrolled before engine 10


def test_the_passing_checks_clips_are_scored_without_being_made_again():
    from voxmith.engines.piper_vc import guard
    from voxmith.engines.piper_vc.engine import _remembering_last

    made = []

    def speak(text, seed, strengths):
        made.append((text, seed, strengths))
        return np.full(3, len(made), np.float32)

    remembering = _remembering_last(speak)
    passing, other = guard.Strengths(network=0.0), guard.Strengths(network=0.0, warp=0.5)
    first = remembering("a b", 0, passing)
    assert np.array_equal(remembering("a b", 0, passing), first) and len(made) == 1
    remembering("a b", 0, None), remembering("a b", 0, None)  # the base voice is never kept
    assert len(made) == 3
    remembering("a b", 0, other)  # other strengths: the earlier ones are dropped
    remembering("a b", 0, passing)
    assert len(made) == 5


def test_without_distillmos_enrollment_keeps_the_guards_strengths(monkeypatch):
    from voxmith.engines.piper_vc import engine as engine_module
    from voxmith.quality import NaturalnessUnavailable

    def unavailable():
        raise NaturalnessUnavailable("distillmos is not installed")

    monkeypatch.setattr(engine_module, "get_naturalness_model", unavailable)
    assert engine_module.PiperVCEngine._enrollment_score(np.ones(256, np.float32)) is None
    # ... and such a conditioning is cached apart (installing DistillMOS later enrolls again)
    engine = engine_module.PiperVCEngine()
    assert engine.cache_key() == f"piper-vc-{engine.version}"
    monkeypatch.setattr(engine_module, "naturalness_installed", lambda: False)
    assert engine.cache_key() == f"piper-vc-{engine.version}{engine_module.NOT_WEIGHED_KEY}"
    assert engine_module.PiperVCNaturalEngine().cache_key() == f"piper-vc-natural-{engine_module.PiperVCNaturalEngine.version}"
    # piper-vc-natural's Kokoro bases were never weighed: it keeps the guard's strengths.
    assert engine_module.PiperVCEngine.prefers_natural and not engine_module.PiperVCNaturalEngine.prefers_natural


def test_guard_tolerance_and_check_sentences():
    from voxmith.engines.piper_vc import enrollment, guard

    assert guard.tolerance_words(10) == guard.MIN_TOLERANCE_WORDS
    assert guard.tolerance_words(200) == round(guard.TOLERANCE_SHARE * 200)
    # The check never grades what the warp search was calibrated on, nor a benchmark sentence.
    assert not set(guard.CHECK_SENTENCES) & set(enrollment.CALIBRATION_SENTENCES)
    benchmark = (Path(__file__).resolve().parents[1] / "benchmarks" / "clone_quality.py").read_text()
    assert not any(sentence[:30] in benchmark for sentence in guard.CHECK_SENTENCES)


def test_guard_listens_to_synthesis_as_a_request_would_render_it(engine, enrolled_demo):
    from voxmith.engines.piper_vc import base_choice, guard
    from voxmith.engines.piper_vc.base_voice import get_base_voice

    _, cond = enrolled_demo
    assert guard.summary(cond)["words"] == sum(len(t.split()) for t in guard.CHECK_SENTENCES)  # it ran
    weaker = guard.Strengths(network=0.0, ridge=0.0)
    speak = engine._guard_speaker(lambda s: dict(cond, **s.to_conditioning()), float(cond["rate"]))
    # As a request at the default settings with Piper's sampling noise off and the pitch shift's
    # floor the guard was tuned with: it judges the conversion, not the seed's noise (which the
    # default request does draw).
    from voxmith.engines.piper_vc.engine import GUARD_RENDERING

    defaults = engine.settings_class()
    assert defaults.noise_scale > 0 and defaults.noise_w > 0
    settings = dataclasses.replace(defaults, **GUARD_RENDERING)
    heard = speak(TEXT, 3, weaker)
    assert np.array_equal(heard, engine.synthesize(TEXT, dict(cond, **weaker.to_conditioning()), settings,
                                                   seed=3)[0].samples)
    noisy = engine.synthesize(TEXT, dict(cond, **weaker.to_conditioning()), defaults, seed=3)[0].samples
    assert noisy.size != heard.size or not np.array_equal(noisy, heard)
    # Later checks reuse the base voice's take of each sentence: the same audio, Piper run once.
    voice = get_base_voice(base_choice.base_name(cond))  # the demo voice's (joe or joe scaled)
    said = []
    original = voice.speak
    voice.speak = lambda *a, **k: said.append(a) or original(*a, **k)
    try:
        again = speak(TEXT, 3, weaker)
        other = speak(TEXT, 3, guard.Strengths(network=0.0, ridge=0.0, warp=0.5))
    finally:
        del voice.speak
    assert np.array_equal(again, heard) and not said
    # Takes made ahead (_check_takes, while the network trains) are the ones the guard then uses.
    takes = {}
    engine._check_takes(voice, float(cond["rate"]), takes, sentences=("Spare words.", TEXT))
    ahead = engine._guard_speaker(lambda s: dict(cond, **s.to_conditioning()), float(cond["rate"]), takes=takes)
    voice.speak = lambda *a, **k: said.append(a) or original(*a, **k)
    try:
        early = ahead(TEXT, 1, weaker)
    finally:
        del voice.speak
    assert not said and np.array_equal(early, engine.synthesize(TEXT, dict(cond, **weaker.to_conditioning()),
                                                                settings, seed=1)[0].samples)
    assert np.array_equal(other, engine.synthesize(TEXT, dict(cond, **guard.Strengths(
        network=0.0, ridge=0.0, warp=0.5).to_conditioning()), settings, seed=3)[0].samples)
    # The base voice speaks at the voice's own rate with the seed's jitter, as the checks' takes do.
    from voxmith.engines.piper_vc.engine import _jittered_length_scale

    base = speak(TEXT, 3, None)
    paced = _jittered_length_scale(settings, float(cond["rate"]), 3)
    assert abs(paced / float(cond["rate"]) - 1.0) <= defaults.length_jitter
    assert np.array_equal(base, get_base_voice().speak(TEXT, seed=3, length_scale=paced).samples)  # `speak`'s: joe


def test_no_adaptation_without_parallel_data(enrolled_demo):
    from voxmith.engines.piper_vc import adaptation
    from voxmith.engines.piper_vc.parallel import ParallelUtterance

    result, _ = enrolled_demo
    unsaid = [ParallelUtterance(u.target, u.text) for u in result.utterances]  # as for one-word clips
    assert adaptation.train_residual(unsaid, result.params) is None
    assert adaptation.from_conditioning({}, result.params) is None


def test_dataset_finetune_replaces_the_enrollment_network(engine, enrolled_demo, trained):
    _, enrolled = enrolled_demo
    cond = dict(enrolled, postnet_scale=np.asarray(1.0))
    analytic = {k: v for k, v in cond.items() if not k.startswith("postnet")}
    run = trained[1]
    variant = engine.with_finetune(as_finetune(run.checkpoints.load(run.checkpoints.latest())["model"], "latest"))
    assert np.array_equal(speak_with(variant, cond), speak_with(variant, analytic))


# The intelligibility guard when a dataset fine-tune is put to use (engine.check_finetune).

def scripted_check(variant, cond, garbled):
    """check_finetune on `variant` with a ScriptedListener in place of synthesis and Whisper."""
    listener = ScriptedListener(garbled)
    variant._guard_speaker = lambda conditioning_at, rate, base_name="joe": listener.speak
    variant._base_speaker = lambda rate, voice: listener.speak
    try:
        events = []
        return variant.check_finetune(cond, progress=events.append, transcribe=listener.transcribe), events
    finally:
        del variant._guard_speaker, variant._base_speaker


def test_finetune_check_passes_backs_off_the_network_or_refuses(engine, trained):
    from voxmith.engines import FINETUNE_REFUSED
    from voxmith.engines.piper_vc import guard

    task, run, _, _, _ = trained
    cond = base_conditioning(task)
    variant = engine.with_finetune(as_finetune(run.checkpoints.load(run.checkpoints.latest())["model"], "check"))
    # Heard as well as the base voice: used at full strength, nothing reduced.
    good, events = scripted_check(variant, cond, lambda s: 0)
    assert FINETUNE_REFUSED not in good
    notes = variant.conditioning_notes({**cond, **good})
    assert notes["reduced"] == [] and notes["strengths"]["network"] == 1.0
    assert notes["words"] == sum(len(t.split()) for t in guard.CHECK_SENTENCES)
    assert {"measuring the base voice (fine-tuned weights)",
            "checking intelligibility (fine-tuned weights)"} <= {e.stage for e in events}
    # A fine-tune whose network babbles: the network is backed off, nothing else.
    babbling, _ = scripted_check(variant, cond, lambda s: 3 if s.network > 0 else 0)
    notes = variant.conditioning_notes({**cond, **babbling})
    assert FINETUNE_REFUSED not in babbling
    assert [s.split()[0] for s in notes["reduced"]] == ["network", "network"]
    assert notes["strengths"] == {"network": 0.0, "ridge": 1.0, "warp": 1.0, "statistics": 1.0, "phones": 0.0}
    # Hopeless: every step of the fine-tune ladder (never the warp: no data to refit it) and refused.
    hopeless, _ = scripted_check(variant, cond, lambda s: 3)
    notes = variant.conditioning_notes({**cond, **hopeless})
    assert [s.split()[0] for s in notes["reduced"]] == ["network", "network", "ridge", "statistics", "statistics"]
    message = str(hopeless[FINETUNE_REFUSED])
    assert "word errors" in message and f"makes {notes['errors']}" in message and "babble" in message
    # The stock engine checks nothing; the key follows the weights, not the Finetune's name.
    assert engine.finetune_check_key() is None and engine.check_finetune(cond) == {}
    same = engine.with_finetune(as_finetune(run.checkpoints.load(run.checkpoints.latest())["model"], "again"))
    untrained = engine.with_finetune(as_finetune(trained[3], "untrained"))
    assert same.finetune_check_key() == variant.finetune_check_key() != untrained.finetune_check_key()


def test_finetune_synthesis_follows_the_strengths_its_check_allowed(engine, trained):
    from voxmith.engines.piper_vc import guard
    from voxmith.engines.piper_vc.engine import FINETUNE_PREFIX

    task, run, _, _, _ = trained
    cond = base_conditioning(task)
    variant = engine.with_finetune(as_finetune(run.checkpoints.load(run.checkpoints.latest())["model"], "check"))
    reduced = guard.Strengths(network=0.0, ridge=0.0, statistics=0.5)
    checked = guard.GuardResult(reduced, 1, 2, 53, ["network 1 -> 0: ..."], 5).to_conditioning(FINETUNE_PREFIX)
    take = variant.synthesize(TEXT, {**cond, **checked}, variant.settings_class(), seed=3)[0]
    # No network, no ridge, half the envelope change: exactly the stock conversion so reduced.
    stock = speak(engine, {**cond, **guard.Strengths(ridge=0.0, statistics=0.5).to_conditioning()})
    assert np.array_equal(take.samples, stock)
    assert not np.array_equal(take.samples, speak(variant, cond))  # unchecked: everything at full strength
    assert take.details["guard"]["checked"] == "fine-tuned weights"
    assert take.details["guard"]["strengths"]["statistics"] == 0.5 and take.details["postnet_mix"] == 0.0
    # The enrollment's own reductions (unprefixed) are not the fine-tune's.
    assert np.array_equal(speak(variant, {**cond, **reduced.to_conditioning()}), speak(variant, cond))


def test_a_candidate_without_finite_scores_is_not_chosen():
    """DistillMOS or GE2E giving NaN for a candidate (a broken clip) neither crashes enrollment
    nor makes that candidate win; with no finite score at all, the guard's strengths stay."""
    from voxmith.engines.piper_vc import guard

    checked = guard.GuardResult(guard.Strengths(network=1.0), base_errors=0, errors=0, words=6)
    plain, gentlest = guard.gentler(checked.strengths)
    made = []

    def speak(text, seed, strengths):
        made.append(strengths)
        return np.full(3, len(made), np.float32)

    def scored(table):
        return lambda samples: table[made[int(samples[0]) - 1]]

    table = {checked.strengths: (0.70, float("nan")), plain: (0.66, 3.0), gentlest: (0.60, 3.2)}
    assert guard.prefer_natural(speak, checked, scored(table), sentences=("one two",)).strengths == plain
    nothing = {s: (float("nan"), float("nan")) for s in table}
    assert guard.prefer_natural(speak, checked, scored(nothing), sentences=("one two",)).strengths == checked.strengths


def test_enrollment_keeps_the_duration_ratio_its_rate_came_from(enrolled_demo):
    """The ratio (target over base voice duration) is kept, so a fine-tune speaking through joe can
    find joe's rate for a voice enrolled with another base (engine._finetune_rate)."""
    from voxmith.engines.piper_vc.engine import DURATION_RATIO_KEY

    result, cond = enrolled_demo
    assert result.duration_ratio is not None and float(cond[DURATION_RATIO_KEY]) == result.duration_ratio
    assert 0.5 < result.duration_ratio < 2.0
