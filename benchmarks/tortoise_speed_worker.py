"""Worker for benchmarks/tortoise_speed.py: times ONE TorToiSe model of ONE side in its own process.

It runs in either interpreter:
* voxmith's venv for `--side ours` (and for `--task make_state`),
* the reference venv for `--side official`, with PYTHONPATH pointing at the unpacked tortoise-tts 3.0.0.
The driver starts one process per (task, side, repetition), so at most one side's model is in memory
and both sides run with the same torch, thread count and inputs. Results go to `--result` as JSON.

Weights: `--task make_state` (voxmith's venv) builds voxmith's models at official size, redraws every
weight with `tests/fixtures/tortoise/golden.randomized_state` (fixed seed per model) and saves one state
file per model. Key names equal the official ones, so both sides load the same file. The vocoder state is
saved in the checkpoint's weight-norm form (`model_g` layout): official loads it and then removes weight
norm (`eval(inference=True)`, as api.py), voxmith folds it on load (`load_model_g`).

Fixed generation length: the AR state gets `mel_head.bias[stop_mel_token] = STOP_BIAS` (-1e4). After the
repetition penalty and the temperature the stop logit stays ~-1e4, so the stop token has probability 0
and both samplers run exactly `max_generate_length` steps (checked: the returned code rows have that
length and contain no stop token). The start code (8192) gets the same bias: a trained model never
samples it, and CLVP (end-to-end presets path) cannot embed it.

voxmith's side also times its reduced-precision AR decoders (`--ar-precisions`, precision.py) built from
the same loaded weights, and `--task ar_quality` measures how closely they follow its fp32 model.

Inputs are drawn from seeded torch generators; the torch versions of both venvs are the same, so the
inputs are identical and the outputs can be compared as a sanity check that both sides did the same work.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
GOLDEN_DIR = HERE.parent / "tests" / "fixtures" / "tortoise"

SEEDS = {"autoregressive": 101, "diffusion": 102, "clvp": 103, "vocoder": 104}
START_MEL_TOKEN, STOP_MEL_TOKEN = 8192, 8193
STOP_BIAS = -1.0e4
# api.py's tts_with_preset sampling settings.
SAMPLING = dict(do_sample=True, temperature=0.8, top_p=0.8, repetition_penalty=2.0, length_penalty=1.0)
TEXT_TOKENS = 25           # plus the trailing 0 api.py appends
COND_FRAMES = 517          # 132300 samples at hop 256: the AR conditioning clip length api.py uses
DIFF_COND_FRAMES = 401     # 102400 samples at 24 kHz, hop 256: the diffusion conditioning clip
AR_LATENT_CODES = 40       # -> 40 * 4 * 24000 // 22050 = 174 diffusion frames
DIFFUSION_STEPS, STEP_INDEX, COND_FREE_K = 30, 15, 2.0
CLVP_CANDIDATES, CLVP_CODES = 16, 500
VOCODER_FRAMES = 100


# ----------------------------------------------------------------------------- model building
def build_ours(task: str):
    from voxmith.engines.tortoise.autoregressive import UnifiedVoice
    from voxmith.engines.tortoise.clvp import CLVP
    from voxmith.engines.tortoise.diffusion import DiffusionTts
    from voxmith.engines.tortoise.vocoder import UnivNetGenerator
    return {"autoregressive": UnifiedVoice, "diffusion": DiffusionTts, "clvp": CLVP,
            "vocoder": UnivNetGenerator}[task]()


def build_official(task: str):
    """The official modules with the constructor arguments api.py uses."""
    if task == "autoregressive":
        from tortoise.models.autoregressive import UnifiedVoice
        return UnifiedVoice(max_mel_tokens=604, max_text_tokens=402, max_conditioning_inputs=2, layers=30,
                            model_dim=1024, heads=16, number_text_tokens=255, start_text_token=255,
                            checkpointing=False, train_solo_embeddings=False)
    if task == "diffusion":
        from tortoise.models.diffusion_decoder import DiffusionTts
        return DiffusionTts(model_channels=1024, num_layers=10, in_channels=100, out_channels=200,
                            in_latent_channels=1024, in_tokens=8193, dropout=0, use_fp16=False, num_heads=16,
                            layer_drop=0, unconditioned_percentage=0)
    if task == "clvp":
        from tortoise.models.clvp import CLVP
        return CLVP(dim_text=768, dim_speech=768, dim_latent=768, num_text_tokens=256, text_enc_depth=20,
                    text_seq_len=350, text_heads=12, num_speech_tokens=8192, speech_enc_depth=20,
                    speech_heads=12, speech_seq_len=430, use_xformers=True)
    if task == "vocoder":
        from tortoise.models.vocoder import UnivNetGenerator
        return UnivNetGenerator()
    raise ValueError(task)


def load_model(side: str, task: str, state_dir: Path, path: Path | None = None):
    path = path or state_dir / f"{task}.pt"
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    model = build_ours(task) if side == "ours" else build_official(task)
    if side == "ours" and task == "vocoder":
        from voxmith.engines.tortoise.vocoder import load_model_g
        load_model_g(model, state)
    else:
        model.load_state_dict(state, strict=True)
    del state
    if side == "official" and task == "vocoder":
        model.eval(inference=True)  # removes weight norm, as api.py
    else:
        model.eval()
    if side == "official" and task == "autoregressive":
        model.post_init_gpt2_config(use_deepspeed=False, kv_cache=True, half=False)  # as api.py (kv_cache=True)
    return model


def make_state(state_dir: Path) -> dict:
    sys.path.insert(0, str(GOLDEN_DIR))
    from golden import randomized_state
    from voxmith.engines.tortoise.vocoder import to_weight_norm_form

    state_dir.mkdir(parents=True, exist_ok=True)
    info = {}
    for task, seed in SEEDS.items():
        model = build_ours(task)
        state = randomized_state(model.state_dict(), seed)
        del model
        if task == "autoregressive":
            state["mel_head.bias"][STOP_MEL_TOKEN] = STOP_BIAS
            # The start code (8192) is never sampled by a trained model, and CLVP cannot embed it.
            state["mel_head.bias"][START_MEL_TOKEN] = STOP_BIAS
        if task == "vocoder":
            state = to_weight_norm_form(state)
        torch.save(state, state_dir / f"{task}.pt")
        info[task] = {"seed": seed, "params": sum(v.numel() for v in state.values() if v.is_floating_point())}
        del state
    (state_dir / "state_info.json").write_text(json.dumps(info, indent=1))
    return info


# ----------------------------------------------------------------------------- timing helpers
def timed(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        torch.manual_seed(0)  # same RNG state for every repetition and both sides
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def summary(times: list[float]) -> dict:
    return {"times_s": [round(t, 4) for t in times], "median_s": statistics.median(times)}


# ----------------------------------------------------------------------------- tasks
def bench_autoregressive(model, side: str, args) -> dict:
    g = torch.Generator().manual_seed(7)
    mels = torch.randn(1, 2, 80, COND_FRAMES, generator=g)
    text = torch.cat([torch.randint(1, 255, (1, TEXT_TOKENS), generator=g), torch.zeros(1, 1, dtype=torch.long)], 1)
    res = {}
    times, cond = timed(lambda: model.get_conditioning(mels), 1)
    res["ar_conditioning"] = summary(times)
    extra = {"official_positions": True} if side == "ours" else {}

    # voxmith also samples with reduced-precision copies of the same model (precision.py); the
    # official side has fp32 only. Metric names: ar_b{batch} (fp32), ar_b{batch}_{precision}.
    decoders = {"float32": model}
    if side == "ours":
        from voxmith.engines.tortoise.precision import decoder_for
        for name in args.ar_precisions:
            # One-off: building a reduced-precision decoder, paid on the first synthesis after the AR
            # weights are loaded or swapped (pipeline.py's DecoderCache), not per sentence.
            start = time.perf_counter()
            decoders[name] = decoder_for(model, name)
            res[f"ar_convert_{name}"] = summary([time.perf_counter() - start])

    def generate(decoder, rows: int, steps: int) -> torch.Tensor:
        return decoder.inference_speech(cond, text, num_return_sequences=rows, max_generate_length=steps,
                                        **SAMPLING, **extra)

    for batch, codes_per_row in args.ar_shapes:
        for name, decoder in decoders.items():
            suffix = "" if name == "float32" else f"_{name}"
            generate(decoder, batch, 2)  # warm-up (allocator, kernels)
            # The prompt pass is what a 1-code call does beyond one sampling step; the N-code call's
            # extra time over it, per extra code, is the per-step decode.
            first, _ = timed(lambda: generate(decoder, batch, 1), args.inner)
            times, codes = timed(lambda: generate(decoder, batch, codes_per_row), args.inner)
            if tuple(codes.shape) != (batch, codes_per_row) or bool((codes == STOP_MEL_TOKEN).any()):
                raise RuntimeError(f"generation length not fixed: shape {tuple(codes.shape)}")
            steps = [(t - min(first)) / (codes_per_row - 1) * 1000 for t in times]
            res[f"ar_prefill_b{batch}{suffix}"] = summary(first)
            res[f"ar_step_b{batch}{suffix}"] = {"times_ms": [round(t, 3) for t in steps],
                                                "median_ms": statistics.median(steps)}
            entry = summary(times)
            entry.update(rows=batch, tokens_per_row=codes_per_row, precision=name,
                         tokens_per_s=batch * codes_per_row / entry["median_s"],
                         codes_head=codes[:2, :12].tolist())
            res[f"ar_b{batch}{suffix}"] = entry
    return res


QUALITY_ROWS, QUALITY_TOKENS = 4, 40


def bench_ar_quality(model, side: str, args) -> dict:
    """How closely each reduced precision follows fp32 on these full-size weights: 4 code rows sampled
    by the fp32 model (api.py settings) are fed back through each decoder's KV cache, and the next-code
    logits are compared (precision.logit_agreement). Also: the step at which a same-seed sample first
    differs from the fp32 one. Random weights give flat-topped distributions (entropy ~6.9 nats at
    temperature .8), so top-1 agreement is a pessimistic figure; KL and nucleus mass matter more."""
    from voxmith.engines.tortoise.precision import decoder_for, logit_agreement, teacher_forced_logits
    if side != "ours":
        raise ValueError("ar_quality compares voxmith's precisions with voxmith's fp32 model")
    g = torch.Generator().manual_seed(7)
    mels = torch.randn(1, 2, 80, COND_FRAMES, generator=g)
    text = torch.cat([torch.randint(1, 255, (1, TEXT_TOKENS), generator=g), torch.zeros(1, 1, dtype=torch.long)], 1)
    cond = model.get_conditioning(mels)
    torch.manual_seed(0)
    codes = model.inference_speech(cond, text, num_return_sequences=QUALITY_ROWS,
                                   max_generate_length=QUALITY_TOKENS, official_positions=True, **SAMPLING)
    reference = teacher_forced_logits(model, cond, text, codes, official_positions=True)
    probs = torch.softmax(reference.double() / SAMPLING["temperature"], dim=-1)
    res = {"ar_quality": {"rows": QUALITY_ROWS, "tokens": QUALITY_TOKENS,
                          "reference_entropy_nats": float(-(probs * probs.clamp_min(1e-300).log()).sum(-1).mean()),
                          "reference_top1_prob": float(probs.amax(-1).mean()),
                          "weights": str(args.ar_checkpoint) if args.ar_checkpoint else "shared random weights"}}
    for name in args.ar_precisions:
        decoder = decoder_for(model, name)
        entry = logit_agreement(reference, teacher_forced_logits(decoder, cond, text, codes, official_positions=True))
        torch.manual_seed(1)
        ours = model.inference_speech(cond, text, max_generate_length=QUALITY_TOKENS, official_positions=True, **SAMPLING)
        torch.manual_seed(1)
        other = decoder.inference_speech(cond, text, max_generate_length=QUALITY_TOKENS, official_positions=True,
                                         **SAMPLING)
        differs = (ours != other)[0].nonzero()
        entry["same_seed_codes_equal_until"] = int(differs[0]) if len(differs) else QUALITY_TOKENS
        res["ar_quality"][name] = entry
    return res


def bench_diffusion(model, side: str, args) -> dict:
    g = torch.Generator().manual_seed(8)
    cond_mels = torch.randn(1, 1, 100, DIFF_COND_FRAMES, generator=g)
    latents = torch.randn(1, AR_LATENT_CODES, 1024, generator=g)
    frames = AR_LATENT_CODES * 4 * 24000 // 22050
    x = torch.randn(1, 100, frames, generator=g)
    res = {}
    times, cond = timed(lambda: model.get_conditioning(cond_mels), 1)
    res["diffusion_conditioning"] = summary(times)
    if side == "ours":
        times, emb = timed(lambda: model.timestep_independent(latents, cond, frames), 1)
    else:
        times, emb = timed(lambda: model.timestep_independent(latents, cond, frames, False), 1)
    res["diffusion_timestep_independent"] = summary(times)
    kwargs = {"precomputed_aligned_embeddings": emb}

    if side == "ours":
        from voxmith.engines.tortoise.diffusion_sampler import load_discrete_vocoder_diffuser
        sampler = load_discrete_vocoder_diffuser(desired_diffusion_steps=DIFFUSION_STEPS, cond_free=True,
                                                 cond_free_k=COND_FREE_K)

        def step() -> torch.Tensor:  # one p_sample step, same op and RNG order as the official one
            mean, log_variance, _ = sampler.model_prediction(model, x, STEP_INDEX, kwargs)
            noise = torch.randn_like(x)
            return mean + float(STEP_INDEX != 0) * torch.exp(0.5 * log_variance) * noise
    else:
        from tortoise.api import load_discrete_vocoder_diffuser
        diffuser = load_discrete_vocoder_diffuser(desired_diffusion_steps=DIFFUSION_STEPS, cond_free=True,
                                                  cond_free_k=COND_FREE_K)
        t = torch.tensor([STEP_INDEX])

        def step() -> torch.Tensor:
            return diffuser.p_sample(model, x, t, model_kwargs=kwargs)["sample"]

    times, out = timed(step, args.inner)
    entry = summary(times)
    entry.update(frames=frames, forwards=2, checksum=float(out.double().sum()), head=out[0, 0, :6].tolist())
    res["diffusion_step"] = entry
    return res


def bench_clvp(model, side: str, args) -> dict:
    g = torch.Generator().manual_seed(9)
    text = torch.cat([torch.randint(1, 255, (1, TEXT_TOKENS), generator=g), torch.zeros(1, 1, dtype=torch.long)], 1)
    codes = torch.randint(0, 8192, (CLVP_CANDIDATES, CLVP_CODES), generator=g)
    texts = text.repeat(CLVP_CANDIDATES, 1)
    if side == "ours":
        times, scores = timed(lambda: model(texts, codes), args.inner)
    else:
        times, scores = timed(lambda: model(texts, codes, return_loss=False), args.inner)
    entry = summary(times)
    entry.update(candidates=CLVP_CANDIDATES, codes=CLVP_CODES, scores=scores.tolist())
    return {"clvp_score": entry}


def bench_vocoder(model, side: str, args) -> dict:
    g = torch.Generator().manual_seed(10)
    mel = torch.randn(1, 100, VOCODER_FRAMES, generator=g) * 2.0 - 5.0
    model.inference(mel)  # warm-up
    times, audio = timed(lambda: model.inference(mel), max(args.inner, 3))
    entry = summary(times)
    entry.update(frames=VOCODER_FRAMES, samples=int(audio.shape[-1]), checksum=float(audio.double().sum()))
    return {"vocoder": entry}


# ----------------------------------------------------------------------------- CUDA presets (needs a GPU)
# End-to-end `ultra_fast` / `fast` runs: voxmith's pipeline.tts() against official TextToSpeech.tts_with_preset(),
# both with the random-weight state files, the same text, voice clips, seed and max_mel_tokens. The AR
# stop code is suppressed (STOP_BIAS), so every sample has exactly `--tokens` codes on both sides and the
# work is identical. NOT RUN where this was written (no CUDA there): treat as untested.
PRESET_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs far away."


def preset_clips() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    return [(0.3 * torch.randn(1, 22050 * 6, generator=g)).clamp(-1, 1) for _ in range(2)]


def bench_presets_cuda(side: str, args) -> dict:
    if not torch.cuda.is_available():
        raise RuntimeError("the presets task needs CUDA")
    device = torch.device("cuda")
    models = {task: load_model(side, task, args.state_dir)
              for task in ("autoregressive", "diffusion", "clvp", "vocoder")}
    res = {}
    if side == "ours":
        from voxmith.engines.tortoise.pipeline import TortoiseModels, tts
        from voxmith.engines.tortoise.presets import preset_options
        from voxmith.engines.tortoise.tokenizer import TortoiseTokenizer
        bundle = TortoiseModels(ar=models["autoregressive"], clvp=models["clvp"], diffusion=models["diffusion"],
                                vocoder=models["vocoder"], device=device)
        tokens = TortoiseTokenizer().text_tokens_for_tts(PRESET_TEXT).to(device)

        def run(preset: str):
            options = preset_options(preset, max_mel_tokens=args.ar_shapes[-1][1], autoregressive_batch_size=16,
                                     official_positions=True)
            return tts(bundle, tokens, options, seed=1, voice_clips=preset_clips()).candidates[0].wav
    else:
        from tortoise.api import TextToSpeech
        from tortoise.utils.tokenizer import VoiceBpeTokenizer
        official = TextToSpeech.__new__(TextToSpeech)  # bypass __init__ (it downloads checkpoints)
        official.models_dir, official.autoregressive_batch_size, official.enable_redaction = None, 16, False
        official.device, official.tokenizer, official.half = device, VoiceBpeTokenizer(), False
        official.autoregressive, official.diffusion = models["autoregressive"], models["diffusion"]
        official.clvp, official.vocoder, official.cvvp = models["clvp"], models["vocoder"], None
        official.rlg_auto = official.rlg_diffusion = None

        def run(preset: str):
            return official.tts_with_preset(PRESET_TEXT, preset=preset, voice_samples=preset_clips(),
                                            max_mel_tokens=args.ar_shapes[-1][1], use_deterministic_seed=1, verbose=False)
    run("ultra_fast")  # warm-up: CUDA context, cuBLAS/cuDNN set-up
    for preset in args.presets:
        torch.cuda.synchronize()
        start = time.perf_counter()
        wav = run(preset)
        torch.cuda.synchronize()
        res[f"preset_{preset}"] = {"times_s": [time.perf_counter() - start],
                                   "median_s": time.perf_counter() - start, "samples": int(wav.shape[-1])}
    return res


BENCHES = {"autoregressive": bench_autoregressive, "diffusion": bench_diffusion, "clvp": bench_clvp,
           "vocoder": bench_vocoder, "ar_quality": bench_ar_quality}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--side", choices=("ours", "official"), default="ours")
    p.add_argument("--task", choices=("make_state", "presets_cuda", *BENCHES), required=True)
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--result", type=Path)
    p.add_argument("--ar-shapes", default="1x200,16x100", help="AR runs as ROWSxCODES, comma-separated")
    p.add_argument("--inner", type=int, default=1, help="timed repetitions inside this process")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--presets", type=lambda s: s.split(","), default=["ultra_fast", "fast"])
    p.add_argument("--ar-precisions", type=lambda s: [x for x in s.split(",") if x], default=[],
                   help="voxmith's reduced AR precisions to time next to fp32 (ours only)")
    p.add_argument("--ar-checkpoint", type=Path, help="ar_quality: an autoregressive.pth to use instead")
    args = p.parse_args()
    args.ar_shapes = [tuple(int(n) for n in part.split("x")) for part in args.ar_shapes.split(",")]

    import warnings
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    if args.task == "make_state":
        out = make_state(args.state_dir)
    elif args.task == "presets_cuda":
        out = bench_presets_cuda(args.side, args)
    else:
        start = time.perf_counter()
        if args.task == "ar_quality":  # the shared random weights, or a real checkpoint when given
            model = load_model(args.side, "autoregressive", args.state_dir, args.ar_checkpoint)
        else:
            model = load_model(args.side, args.task, args.state_dir)
        load_s = time.perf_counter() - start
        with torch.no_grad():
            out = BENCHES[args.task](model, args.side, args)
        out["_meta"] = {"side": args.side, "task": args.task, "load_s": load_s, "torch": torch.__version__,
                        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                        "threads": torch.get_num_threads(), "pid": os.getpid()}
    text = json.dumps(out)
    if args.result:
        args.result.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
