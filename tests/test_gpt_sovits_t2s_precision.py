"""Reduced-precision views of the GPT-SoVITS GPT: close to fp32, sharing its weights, refusing
what this machine cannot run."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from tests.fixtures.gpt_sovits.t2s_weights import golden_t2s_state
from voxmith.engines.device import CpuInfo
from voxmith.engines.gpt_sovits.sampling import SamplingSettings
from voxmith.engines.gpt_sovits.t2s import T2SConfig, Text2SemanticModel
from voxmith.engines.gpt_sovits.t2s_generate import generate_semantic
from voxmith.engines.gpt_sovits.t2s_precision import resolve_t2s_precision, t2s_decoder_for
from voxmith.engines.precision import int8_supported
from voxmith.errors import VoxmithError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    m = Text2SemanticModel(T2SConfig.tiny())
    m.load_state_dict(golden_t2s_state(m.state_dict(), 1414))
    return m.eval()


def inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 40, (1, 9), generator=g), torch.randn(1, 1024, 9, generator=g),
            torch.randint(0, 1024, (1, 12), generator=g))


@pytest.mark.parametrize("precision", ["int8", "bfloat16"])
def test_view_follows_fp32(model, precision):
    if precision == "int8" and not int8_supported():
        pytest.skip("no fbgemm int8 kernels in this torch build")
    phones, bert, codes = inputs()
    view = t2s_decoder_for(model, precision)
    with torch.no_grad():
        ref, got = model(phones, bert, codes), view(phones, bert, codes)
    # Relative to the spread of the logits; a broken layer would be off by about the spread itself.
    assert float((got - ref).abs().max() / ref.std()) < 0.1
    assert float((got - ref).abs().max()) > 0  # really converted
    assert view.bert_proj.weight is model.bert_proj.weight  # shared, not copied
    assert isinstance(model.layers[0].linear1, nn.Linear) and "in_proj" not in model.layers[0].self_attn._modules
    codes_out = generate_semantic(view, phones[0], bert[0], codes[0], SamplingSettings(),
                                  torch.Generator().manual_seed(1), early_stop_num=20)
    assert 1 <= codes_out.numel() <= 20 and int(codes_out.max()) < 1024


def test_float32_is_the_model_itself(model):
    assert t2s_decoder_for(model, "float32") is model


def test_resolve_precision():
    vnni = CpuInfo(model="test", features=("avx2", "avx512_vnni"))
    assert resolve_t2s_precision("float32", "cpu")[0] == "float32"
    assert resolve_t2s_precision("auto", "cuda")[0] == "float32"
    if int8_supported():
        assert resolve_t2s_precision("auto", "cpu", vnni)[0] == "int8"
    with pytest.raises(VoxmithError, match="t2s_precision"):
        resolve_t2s_precision("int4", "cpu")
    with pytest.raises(VoxmithError, match="CPU only"):
        resolve_t2s_precision("int8", "cuda")
