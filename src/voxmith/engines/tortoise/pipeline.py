"""The TorToiSe inference pipeline: official `TextToSpeech.tts` (3.0.0) rebuilt on voxmith's models.

`tts()` runs the stages of SPEC §5 in the official order: seed, conditioning latents (official clip
crops, given latents, or a random voice), autoregressive sampling in `num_samples // batch` batches,
the fix-up of every code row, CLVP (optionally blended with CVVP) scoring and top-k, the latent pass,
then per candidate the calm-token trim, diffusion, denormalisation and the vocoder. Random numbers are
drawn from the global torch RNG and Python's `random` in exactly the official order (§5.10), so with
the same weights, seed and options (`official_positions=True` for a kv-cache run) the codes and audio
equal the official ones. The global RNG state is restored afterwards.

`TortoiseModels` holds the models: loaded strictly from the official checkpoint files, or assembled
from modules (tests use tiny random-weight ones).
"""

from __future__ import annotations

import contextlib
import pickle
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report

from .audio import denormalize_tacotron_mel, official_conditioning_mels
from .autoregressive import UnifiedVoice, UnifiedVoiceConfig
from .clvp import CLVP, CLVPConfig
from .cvvp import CVVP, CVVPConfig
from .diffusion import DiffusionConfig, DiffusionTts
from .diffusion_sampler import load_discrete_vocoder_diffuser
from .precision import DecoderCache, resolve_ar_precision
from .presets import AR_PRECISIONS, SAMPLERS, TtsOptions, auto_batch_size, estimate_seconds
from .random_latents import RandomLatentConfig, RandomLatentConverter
from .vocoder import UnivNetConfig, UnivNetGenerator, fold_weight_norm

STOP_TOKEN = 8193
CALM_TOKEN = 83  # the code for silence; stop tokens become this in the fix-up
CALM_RUN = 8  # the latents end at the first calm token that follows 8 others
FIXUP_TAIL = (45, 45, 248)  # the official fix-up writes these into the last three positions
CODES_PER_SAMPLE = 1024  # 22.05 kHz samples per AR code
LOW_MEMORY_BYTES = 2 * 1024 ** 3  # below this much free CUDA memory, finished stages go to the CPU


# ----------------------------------------------------------------------------------- models


def _load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if path.name != "vocoder.pth":
            raise
        # vocoder.pth is a UnivNet training checkpoint whose extra entries (hyper-parameters)
        # may not be plain tensors; it comes from the pinned official repository.
        return torch.load(path, map_location="cpu", weights_only=False)


def _load_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path, what: str) -> None:
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:
        lines = str(err).splitlines()
        raise VoxmithError(f"{path} does not hold the TorToiSe {what} weights this version expects "
                           f"({' '.join(lines[1:3])[:400]}). Delete it and download it again.") from None


def build_loaded(cls, config, path: Path, what: str, meta: bool = True) -> torch.nn.Module:
    """Construct `cls(config)` and load `path` strictly. On the meta device construction is free;
    `meta=False` builds normally, consuming the torch RNG as official's lazy construction does."""
    state = _load_state(path)
    if isinstance(state, dict) and "model_g" in state:
        state = fold_weight_norm(state["model_g"])
    with torch.device("meta") if meta else contextlib.nullcontext():
        model = cls(config)
    _load_strict(model, state, path, what)
    return model.float().eval()


@dataclass
class TortoiseModels:
    """The models of one pipeline, on `device`. CVVP and the random-voice converters are optional:
    when missing, `cvvp_builder` / `rlg_builder` make them on first use inside `tts()`, which (like
    official) draws from the torch RNG at that point of the seeded run."""

    ar: UnifiedVoice
    clvp: CLVP
    diffusion: DiffusionTts
    vocoder: UnivNetGenerator
    cvvp: Optional[CVVP] = None
    rlg_auto: Optional[RandomLatentConverter] = None
    rlg_diffusion: Optional[RandomLatentConverter] = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    cvvp_builder: Optional[Callable[[], CVVP]] = None
    rlg_builder: Optional[Callable[[], Tuple[RandomLatentConverter, RandomLatentConverter]]] = None
    low_memory_bytes: int = LOW_MEMORY_BYTES
    # Reduced-precision copies of `ar` for sampling (precision.py), made on first use and rebuilt
    # when the AR weights change (a fine-tune swapped in).
    decoders: DecoderCache = field(default_factory=DecoderCache, repr=False)

    def __post_init__(self) -> None:
        self.device = torch.device(self.device)
        for model in (self.ar, self.clvp, self.diffusion, self.vocoder):
            model.eval().to(self.device)

    @classmethod
    def from_checkpoints(cls, paths: Mapping[str, Path], device: str | torch.device = "cpu",
                         resolve: Optional[Callable[[str], Path]] = None,
                         configs: Optional[Mapping[str, object]] = None) -> "TortoiseModels":
        """Load the four required official files (name -> path) strictly. `resolve(name)` finds (or
        downloads) the optional ones (cvvp.pth, rlg_auto.pth, rlg_diffuser.pth) when first needed.
        `configs` (file name -> model config) replaces the official sizes, for tests."""
        configs = dict(configs or {})
        default = {"autoregressive.pth": UnifiedVoiceConfig(), "clvp2.pth": CLVPConfig(), "cvvp.pth": CVVPConfig(),
                   "diffusion_decoder.pth": DiffusionConfig(), "vocoder.pth": UnivNetConfig(),
                   "rlg_auto.pth": RandomLatentConfig.auto(), "rlg_diffuser.pth": RandomLatentConfig.diffuser()}
        cfg = {name: configs.get(name, value) for name, value in default.items()}

        def path_of(name: str) -> Path:
            if name in paths:
                return Path(paths[name])
            if resolve is None:
                raise VoxmithError(f"TorToiSe checkpoint {name} is needed for this option but was not given.")
            return Path(resolve(name))

        def build_cvvp() -> CVVP:
            return build_loaded(CVVP, cfg["cvvp.pth"], path_of("cvvp.pth"), "CVVP", meta=False)

        def build_rlg() -> Tuple[RandomLatentConverter, RandomLatentConverter]:
            auto = build_loaded(RandomLatentConverter, cfg["rlg_auto.pth"], path_of("rlg_auto.pth"),
                                 "random-voice (autoregressive)", meta=False)
            diff = build_loaded(RandomLatentConverter, cfg["rlg_diffuser.pth"],
                                 path_of("rlg_diffuser.pth"), "random-voice (diffusion)", meta=False)
            return auto, diff

        return cls(
            ar=build_loaded(UnifiedVoice, cfg["autoregressive.pth"], path_of("autoregressive.pth"), "autoregressive"),
            clvp=build_loaded(CLVP, cfg["clvp2.pth"], path_of("clvp2.pth"), "CLVP"),
            diffusion=build_loaded(DiffusionTts, cfg["diffusion_decoder.pth"], path_of("diffusion_decoder.pth"), "diffusion"),
            vocoder=build_loaded(UnivNetGenerator, cfg["vocoder.pth"], path_of("vocoder.pth"), "vocoder"),
            device=torch.device(device), cvvp_builder=build_cvvp, rlg_builder=build_rlg)

    @classmethod
    def tiny(cls, seed: int = 0, device: str | torch.device = "cpu", stop_boost: float = 3.0) -> "TortoiseModels":
        """Tiny random-weight models (no checkpoints) for tests and smoke runs. The AR's stop code is
        made likely so takes end quickly, and its start code impossible (CLVP cannot embed it)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ar = UnifiedVoice(UnifiedVoiceConfig.tiny())
            diffusion = DiffusionTts(DiffusionConfig.tiny())
            with torch.no_grad():
                ar.mel_head.bias[STOP_TOKEN] += stop_boost
                ar.mel_head.bias[ar.config.start_mel_token] -= 30.0
                for model in (ar, diffusion):  # official init zeroes these; make every block count
                    for name, param in model.named_parameters():
                        if name.endswith("proj_out.weight"):
                            param.normal_(0, 0.02)
            models = cls(ar=ar, clvp=CLVP(CLVPConfig.tiny()), diffusion=diffusion,
                         vocoder=UnivNetGenerator(UnivNetConfig.tiny()), device=torch.device(device))
        channels = (ar.config.model_dim, 2 * diffusion.config.model_channels)
        models.cvvp_builder = lambda: CVVP(CVVPConfig.tiny()).eval()
        models.rlg_builder = lambda: tuple(RandomLatentConverter(c).eval() for c in channels)
        return models

    # Stage placement: models are used on `device`; when CUDA memory runs short a finished stage's
    # model waits on the CPU (official moves every model back after each use, which is slower).
    def use(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def ar_decoder(self, precision: str) -> UnifiedVoice:
        """The AR model to sample codes with at `precision` (`ar` itself for float32), on `device`."""
        return self.decoders.get(self.use(self.ar), precision)

    def release(self, *models: Optional[torch.nn.Module]) -> None:
        if self.device.type != "cuda":
            return
        if torch.cuda.mem_get_info(self.device)[0] < self.low_memory_bytes:
            for model in models:
                if model is not None:
                    model.cpu()
            torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------- steps


def fix_autoregressive_output(codes: torch.Tensor, stop_token: int = STOP_TOKEN) -> torch.Tensor:
    """The official fix-up of one padded code row, in place: from the first stop token on every code
    becomes the calm token, and the row's last three codes become 45, 45, 248 (whatever the row's
    length). Rows that never stopped are left unchanged."""
    stops = (codes == stop_token).nonzero()
    if len(stops) == 0:
        return codes
    codes[stops] = CALM_TOKEN
    codes[int(stops.min()):] = CALM_TOKEN
    codes[-3:] = torch.tensor(FIXUP_TAIL, dtype=codes.dtype, device=codes.device)
    return codes


def calm_trim_length(codes: Sequence[int] | torch.Tensor) -> Optional[int]:
    """Index of the first calm token preceded by CALM_RUN others (the latents are cut there), or None."""
    run = 0
    for i, code in enumerate(codes.tolist() if isinstance(codes, torch.Tensor) else codes):
        run = run + 1 if code == CALM_TOKEN else 0
        if run > CALM_RUN:
            return i
    return None


def _autocast(device: torch.device, half: bool):
    if half and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch and Python's `random` as official `deterministic_state` does; restore both after."""
    state = random.getstate()
    devices = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            random.seed(seed)
            yield
    finally:
        random.setstate(state)


@dataclass
class TtsCandidate:
    wav: torch.Tensor  # (samples,) float32 on the CPU, 24 kHz, in [-1, 1]
    mel: torch.Tensor  # (1, 100, frames) denormalised log mel fed to the vocoder
    codes: torch.Tensor  # (max_mel_tokens,) fixed-up codes
    sample_index: int  # which AR sample (0-based, in sampling order)
    score: float  # ranking score: CLVP, or the CLVP/CVVP blend
    clvp: Optional[float]
    cvvp: Optional[float]
    latent_length: int  # codes kept after the calm trim


@dataclass
class TtsResult:
    candidates: List[TtsCandidate]  # best first
    sampled: torch.Tensor  # (N, max_mel_tokens) codes as sampled, stop-padded, before the fix-up
    scores: torch.Tensor  # (N,) ranking scores
    clvp_scores: Optional[torch.Tensor]
    cvvp_scores: Optional[torch.Tensor]
    auto_latent: torch.Tensor
    diffusion_latent: torch.Tensor
    seed: int


def check_options(options: TtsOptions) -> None:
    """Raise ValueError for options the pipeline cannot run (the engine's settings give nicer messages)."""
    if options.sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {options.sampler!r}")
    if options.k < 1 or options.num_autoregressive_samples < 1 or options.max_mel_tokens < 4:
        raise ValueError("k and num_autoregressive_samples must be at least 1, max_mel_tokens at least 4")
    if options.ar_precision not in AR_PRECISIONS:
        raise ValueError(f"ar_precision must be one of {', '.join(AR_PRECISIONS)}, got {options.ar_precision!r}")


@torch.no_grad()
def tts(models: TortoiseModels, text_tokens: torch.Tensor, options: TtsOptions, seed: Optional[int] = None, *,
        voice_clips: Optional[Sequence[torch.Tensor]] = None,
        latents: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
        cvvp_mels: Optional[torch.Tensor] = None,
        progress: Optional[ProgressCallback] = None) -> TtsResult:
    """Official `TextToSpeech.tts` for one text. `text_tokens` (1, n+1): ids plus the trailing 0.

    Voice, as official: `voice_clips` ((1, T) 22.05 kHz tensors, cropped the official way after
    seeding; their AR mels also feed CVVP), else `latents` = (auto (1, D), diffusion (1, 2C)) with
    optional `cvvp_mels` (1, n, 80, F) for CVVP (a voxmith extension: official skips CVVP here), else
    a random voice. With cvvp_amount = 1 and no mels, ranking falls back to CLVP (official crashes).
    """
    device = models.device
    batch = options.autoregressive_batch_size or auto_batch_size(str(device))
    options = options.replace(autoregressive_batch_size=batch)
    check_options(options)
    resolve_ar_precision(options.ar_precision, device)  # int8 is CPU-only: a clear error elsewhere
    num_batches = options.num_autoregressive_samples // batch  # floor, as official: extra samples dropped
    if num_batches * batch < options.k:
        raise ValueError(f"{num_batches * batch} autoregressive samples cannot give k={options.k} candidates")
    seed = int(time.time()) if seed is None else int(seed)
    clips = len(voice_clips) if voice_clips else (cvvp_mels.shape[1] if cvvp_mels is not None else 1)
    report(progress, "tortoise: estimated time", 0, None,
           f"about {estimate_seconds(options, str(device), clips):.0f} s on {device.type}")
    text = text_tokens.to(device)
    max_mel = options.max_mel_tokens
    with _seeded(seed, device):
        # -- conditioning (§5.3): the official crops draw from Python's random here, in clip order
        if voice_clips:
            ar_mels, diff_mels = official_conditioning_mels([c.reshape(1, -1).float().cpu() for c in voice_clips])
            auto_latent = models.use(models.ar).get_conditioning(ar_mels.to(device))
            diffusion_latent = models.use(models.diffusion).get_conditioning(diff_mels.to(device))
            cvvp_mels = ar_mels
        elif latents is not None:
            auto_latent, diffusion_latent = (t.to(device).float() for t in latents)
        else:
            if models.rlg_auto is None:
                if models.rlg_builder is None:
                    raise VoxmithError("No voice given and no random-voice models available.")
                models.rlg_auto, models.rlg_diffusion = models.rlg_builder()
            auto_latent = models.rlg_auto(torch.tensor([0.0])).to(device)
            diffusion_latent = models.rlg_diffusion(torch.tensor([0.0])).to(device)

        # -- autoregressive sampling (§5.4); the latent pass below always uses the fp32 model
        ar = models.use(models.ar)
        decoder = models.ar_decoder(options.ar_precision)
        sampled = []
        report(progress, "sampling speech codes", 0, num_batches)
        for b in range(num_batches):
            with _autocast(device, options.half):
                codes = decoder.inference_speech(auto_latent, text, num_return_sequences=batch,
                                            max_generate_length=max_mel, do_sample=True,
                                            temperature=options.temperature, top_p=options.top_p,
                                            repetition_penalty=options.repetition_penalty,
                                            length_penalty=options.length_penalty,
                                            official_positions=options.official_positions)
            sampled.append(F.pad(codes, (0, max_mel - codes.shape[1]), value=STOP_TOKEN))
            report(progress, "sampling speech codes", b + 1, num_batches)
        models.release(models.ar)

        # -- fix-up, CLVP / CVVP scoring, top-k (§5.5, §5.6)
        amount = float(options.cvvp_amount)
        cvvp = None
        if amount > 0:
            if models.cvvp is None:  # built here, as official: its init draws from the torch RNG
                if models.cvvp_builder is None:
                    raise VoxmithError("cvvp_amount > 0 needs the CVVP model, which is not available.")
                models.cvvp = models.cvvp_builder()
            cvvp = models.use(models.cvvp) if cvvp_mels is not None else None
        clvp = models.use(models.clvp)
        fixed = [codes.clone() for codes in sampled]
        scores, clvp_scores, cvvp_scores = [], [], []
        report(progress, "ranking takes", 0, len(fixed))
        for n, codes in enumerate(fixed):
            for row in codes:
                fix_autoregressive_output(row)
            with _autocast(device, options.half):
                clvp_out = clvp(text.repeat(codes.shape[0], 1), codes) if amount != 1 or cvvp is None else None
                if cvvp is not None:
                    mels = cvvp_mels.to(device)
                    total = 0
                    for c in range(mels.shape[1]):
                        total = total + cvvp(mels[:, c].repeat(codes.shape[0], 1, 1), codes)
                    cvvp_out = total / mels.shape[1]
                    scores.append(cvvp_out if amount == 1 else cvvp_out * amount + clvp_out * (1 - amount))
                    cvvp_scores.append(cvvp_out.float())
                else:
                    scores.append(clvp_out)
            if clvp_out is not None:
                clvp_scores.append(clvp_out.float())
            report(progress, "ranking takes", n + 1, len(fixed))
        all_scores = torch.cat(scores).float()
        all_codes = torch.cat(fixed)
        top = torch.topk(torch.cat(scores), k=options.k).indices
        best = all_codes[top]
        models.release(models.clvp, models.cvvp)

        # -- latents of the chosen takes (§5.7)
        with _autocast(device, options.half):
            best_latents = ar(auto_latent.repeat(options.k, 1), text.repeat(options.k, 1),
                              torch.tensor([text.shape[-1]], device=device), best,
                              torch.tensor([best.shape[-1] * CODES_PER_SAMPLE], device=device),
                              return_latent=True, clip_inputs=False).float()
        models.release(models.ar)

        # -- per candidate: calm trim, diffusion, vocoder (§5.8, §5.9)
        diffuser = load_discrete_vocoder_diffuser(desired_diffusion_steps=options.diffusion_iterations,
                                                  cond_free=options.cond_free, cond_free_k=options.cond_free_k)
        diffusion, vocoder = models.use(models.diffusion), models.use(models.vocoder)
        steps = diffuser.num_steps
        candidates = []
        for b in range(options.k):
            trim = calm_trim_length(best[b])
            lat = best_latents[b:b + 1] if trim is None else best_latents[b:b + 1, :trim]
            out_len = lat.shape[1] * 4 * 24000 // 22050  # 22.05 kHz codes -> 24 kHz mel frames
            emb = diffusion.timestep_independent(lat, diffusion_latent, out_len)
            noise = torch.randn((1, 100, out_len), device=lat.device) * options.diffusion_temperature

            def tracked(indices, b=b):
                for n, i in enumerate(indices):
                    report(progress, "diffusion", b * steps + n, options.k * steps)
                    yield i

            kwargs = {"precomputed_aligned_embeddings": emb}
            if options.sampler == "ddim":
                mel = diffuser.ddim_sample_loop(diffusion, noise, model_kwargs=kwargs, progress=tracked)
            else:
                mel = diffuser.p_sample_loop(diffusion, noise, model_kwargs=kwargs, progress=tracked)
            mel = denormalize_tacotron_mel(mel)[:, :, :out_len]
            wav = vocoder.inference(mel)
            index = int(top[b])
            candidates.append(TtsCandidate(
                wav=wav.reshape(-1).float().cpu(), mel=mel.cpu(), codes=best[b].cpu(), sample_index=index,
                score=float(all_scores[index]),
                clvp=float(torch.cat(clvp_scores)[index]) if clvp_scores else None,
                cvvp=float(torch.cat(cvvp_scores)[index]) if cvvp_scores else None,
                latent_length=lat.shape[1]))
        report(progress, "diffusion", options.k * steps, options.k * steps)
        models.release(models.diffusion, models.vocoder)
    return TtsResult(candidates=candidates, sampled=torch.cat(sampled).cpu(), scores=all_scores.cpu(),
                     clvp_scores=torch.cat(clvp_scores).cpu() if clvp_scores else None,
                     cvvp_scores=torch.cat(cvvp_scores).cpu() if cvvp_scores else None,
                     auto_latent=auto_latent.cpu(), diffusion_latent=diffusion_latent.cpu(), seed=seed)


__all__ = ["TortoiseModels", "TtsCandidate", "TtsResult", "tts", "fix_autoregressive_output",
           "calm_trim_length", "check_options", "TtsOptions"]
