"""Reduced-precision sampling for TorToiSe's autoregressive model (precision.py), at tiny size.

The tiny model gets the golden `randomized_state` weights with the mel head scaled up, so its next-code
distributions are peaked like a trained model's (entropy ~2 nats at temperature .8 instead of a
near-uniform ~8.9); agreement with fp32 is measured along sampled code sequences fed back through the
KV cache, as sampling does. The fp32 path itself is covered bit-for-bit by the golden tests
(test_tortoise_autoregressive.py, test_tortoise_pipeline.py): float32 must hand back the model itself.
"""

from __future__ import annotations

import pytest
import torch

from tests.fixtures.tortoise.golden import FIXTURES_DIR, randomized_state
from voxmith.engines import precision as shared_precision
from voxmith.engines.tortoise import precision
from voxmith.engines.tortoise.autoregressive import UnifiedVoice, UnifiedVoiceConfig
from voxmith.engines.tortoise.precision import (DecoderCache, decoder_for, logit_agreement,
                                                resolve_ar_precision, teacher_forced_logits)
from voxmith.errors import VoxmithError

HEAD_SCALE = 10.0  # peaks the tiny model's next-code distributions (see the module docstring)
SAMPLING = dict(do_sample=True, temperature=0.8, top_p=0.8, repetition_penalty=2.0)
needs_int8 = pytest.mark.skipif(not precision.int8_supported(), reason="no x86 (fbgemm) int8 kernels in this torch")


def _model(seed: int, head_scale: float = HEAD_SCALE) -> UnifiedVoice:
    model = UnifiedVoice(UnifiedVoiceConfig.tiny())
    state = randomized_state(model.state_dict(), seed)
    state["mel_head.weight"] = state["mel_head.weight"] * head_scale
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def setup():
    golden = torch.load(FIXTURES_DIR / "autoregressive.pt", map_location="cpu", weights_only=True)
    model = _model(golden["seed"])
    with torch.no_grad():
        cond = model.get_conditioning(golden["cond_mels"][:1])
        torch.manual_seed(0)
        codes = model.inference_speech(cond, golden["latent_text"][:1], num_return_sequences=4,
                                       max_generate_length=60, **SAMPLING)
    text = golden["latent_text"][:1]
    reference = teacher_forced_logits(model, cond, text, codes)
    return model, cond, text, codes, reference


def test_teacher_forcing_reproduces_sampling_logits(setup):
    """The measuring tool itself: forcing the fp32 model's own draws gives back its logits; greedy
    decoding (argmax, repetition penalty 1) must pick the teacher-forced argmax at every step."""
    model, cond, text, _, _ = setup
    with torch.no_grad():
        greedy = model.inference_speech(cond, text, max_generate_length=30, do_sample=False)
    logits = teacher_forced_logits(model, cond, text, greedy)
    assert logits.shape == (greedy.shape[1], 1, model.config.number_mel_codes)
    assert torch.equal(logits[:, 0].argmax(-1), greedy[0])


def test_float32_is_the_model_itself(setup):
    model = setup[0]
    assert decoder_for(model, "float32") is model
    assert DecoderCache().get(model, "float32") is model


@needs_int8
@pytest.mark.parametrize("name, top1, kl_mean", [("int8", 0.90, 0.02), ("bfloat16", 0.97, 0.002)])
def test_reduced_precision_follows_fp32(setup, name, top1, kl_mean):
    """Measured at this size: int8 top-1 .96, KL .0034 nats; bf16 top-1 .99, KL .0002."""
    model, cond, text, codes, reference = setup
    decoder = decoder_for(model, name)
    logits = teacher_forced_logits(decoder, cond, text, codes)
    agreement = logit_agreement(reference, logits)
    assert agreement["max_logit_error_rel"] > 0  # the layers really were converted
    assert agreement["top1_agreement"] >= top1, agreement
    assert agreement["kl_mean"] <= kl_mean, agreement
    assert 0.98 <= agreement["nucleus_mass_ratio"] <= 1.02, agreement
    # It samples like the fp32 model: valid codes, the stop token padding finished rows.
    torch.manual_seed(1)
    with torch.no_grad():
        sampled = decoder.inference_speech(cond, text, num_return_sequences=3, max_generate_length=40, **SAMPLING)
    assert sampled.shape[0] == 3 and 0 < sampled.shape[1] <= 40
    assert int(sampled.min()) >= 0 and int(sampled.max()) < model.config.number_mel_codes


@needs_int8
def test_int8_layer_matches_integer_arithmetic():
    """One converted layer against the same quantisation done in float64 (per-channel int8 weights,
    one asymmetric 8- or 7-bit range for the input): catches saturating integer sums, which would
    give errors far above rounding. Inputs are large and aligned with the weights to provoke them."""
    torch.manual_seed(3)
    weight = torch.randn(256, 96) * 0.05  # [in, out], the Conv1D layout
    bias = torch.randn(96) * 0.1
    layer = shared_precision.Int8DynamicLinear(weight.t(), bias)
    x = torch.relu(torch.randn(5, 256)) * 8 + torch.sign(weight[:, 0]) * 4
    w = weight.t().double()
    scale = w.abs().amax(1, keepdim=True) / 127
    wq = torch.round(w / scale) * scale
    levels = 127 if shared_precision.REDUCE_RANGE else 255
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    step = (hi - lo) / levels
    zero = round(-lo / step)
    xq = (torch.clamp(torch.round(x.double() / step) + zero, 0, levels) - zero) * step
    expected = xq @ wq.t() + bias.double()
    got = layer(x.reshape(5, 1, 256)).reshape(5, 96).double()
    exact = x.double() @ w.t() + bias.double()
    assert (got - expected).abs().max() < 0.02 * (exact - expected).abs().max() + 1e-3
    assert (got - exact).abs().max() < 0.05 * exact.abs().max()


def test_decoder_shares_weights_and_follows_reloads():
    model = _model(11)
    cache = DecoderCache()
    first = cache.get(model, "bfloat16")
    assert cache.get(model, "bfloat16") is first  # converted once
    assert first.mel_embedding.weight is model.mel_embedding.weight  # shared, not copied
    assert first.gpt.h[0].ln_1.weight is model.gpt.h[0].ln_1.weight
    assert isinstance(model.gpt.h[0].attn.c_attn, precision.Conv1D)  # the fp32 model is untouched
    model.load_state_dict(_model(12).state_dict())  # e.g. a fine-tune swapped in: copied in place
    second = cache.get(model, "bfloat16")
    assert second is not first
    expected = model.gpt.h[0].mlp.c_fc.weight.t().to(torch.bfloat16)
    assert torch.equal(second.gpt.h[0].mlp.c_fc.weight, expected)


def test_precision_setting_is_validated():
    from voxmith.engines.tortoise.engine import TortoiseSettings
    from voxmith.engines.tortoise.pipeline import check_options
    from voxmith.engines.tortoise.presets import TtsOptions

    with pytest.raises(VoxmithError, match="'ar_precision' must be one of auto, float32, bfloat16, int8, got 'int4'"):
        TortoiseSettings.from_dict({"ar_precision": "int4"})
    assert TortoiseSettings().ar_precision == "auto"
    assert TortoiseSettings.from_dict({"ar_precision": "bfloat16"}).options().ar_precision == "bfloat16"
    assert TtsOptions().ar_precision == "float32"  # a bare official tts() call stays fp32
    with pytest.raises(ValueError, match="ar_precision"):
        check_options(TtsOptions(ar_precision="fp8"))
    with pytest.raises(VoxmithError, match="CPU only.*ar_precision=float32"):
        resolve_ar_precision("int8", "cuda")
    assert resolve_ar_precision("auto", "cuda") == "float32"
    assert resolve_ar_precision("auto", "cpu") == ("int8" if precision.int8_supported() else "float32")
    assert resolve_ar_precision("bfloat16", "cpu") == "bfloat16"


def test_time_estimate_counts_the_faster_cpu_sampling():
    from voxmith.engines.tortoise.presets import TtsOptions, estimate_seconds

    fp32, int8 = TtsOptions(num_autoregressive_samples=16), TtsOptions(num_autoregressive_samples=16, ar_precision="int8")
    assert estimate_seconds(int8, "cpu") < estimate_seconds(fp32, "cpu")
    assert estimate_seconds(int8, "cuda") == estimate_seconds(fp32, "cuda")


@needs_int8
def test_pipeline_samples_with_the_chosen_precision(monkeypatch):
    """tts() samples with the converted decoder and keeps the fp32 model for the latent pass."""
    from voxmith.engines.tortoise.pipeline import TortoiseModels, tts
    from voxmith.engines.tortoise.presets import TtsOptions

    models = TortoiseModels.tiny(seed=2)
    used = []
    original = UnifiedVoice.inference_speech

    def spy(self, *args, **kwargs):
        used.append(type(self.gpt.h[0].mlp.c_fc).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UnifiedVoice, "inference_speech", spy)
    options = TtsOptions(num_autoregressive_samples=2, autoregressive_batch_size=2, max_mel_tokens=12,
                         diffusion_iterations=2, ar_precision="int8")
    latents = (torch.randn(1, 64), torch.randn(1, 128))
    result = tts(models, torch.tensor([[20, 30, 0]]), options, 4, latents=latents)
    assert used == ["Int8DynamicLinear"] and torch.isfinite(result.candidates[0].wav).all()
    assert isinstance(models.ar.gpt.h[0].mlp.c_fc, precision.Conv1D)
    tts(models, torch.tensor([[20, 30, 0]]), options.replace(ar_precision="float32"), 4, latents=latents)
    assert used[-1] == "Conv1D"


@pytest.mark.parametrize("flags, int8_kernels, expected", [
    ("avx2 fma avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8", True, "int8"),  # Xeon, AMX
    ("avx2 fma avx512f avx512_vnni avx512_bf16", True, "int8"),  # EPYC (Zen 4)
    ("avx2 fma", True, "int8"),  # AVX2 only: 7-bit inputs
    ("avx2 fma avx512f avx512_vnni", False, "float32"),  # a torch build without fbgemm
    ("sse4_2", True, "float32"),  # fbgemm needs AVX2
    ("", False, "float32"),  # features unknown (non-x86, no /proc/cpuinfo)
])
def test_auto_precision_follows_cpu_features(flags, int8_kernels, expected):
    from voxmith.engines.device import parse_cpuinfo

    cpu = parse_cpuinfo(f"model name\t: scripted\nflags\t: {flags}\n")
    choice, why = precision.auto_cpu_precision(cpu, int8_kernels)
    assert choice == expected and why
    if int8_kernels == precision.int8_supported():
        assert resolve_ar_precision("auto", "cpu", cpu=cpu) == expected
    assert resolve_ar_precision("auto", "cuda", cpu=cpu) == "float32"
