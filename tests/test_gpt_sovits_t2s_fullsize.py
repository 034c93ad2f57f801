"""The GPT-SoVITS GPT at the OFFICIAL v2 size (random weights, real memory, CPU).

The golden tests check the maths at tiny size and the key tests the official layout on the meta
device; this one makes sure the full-size model runs: generation through the kv-cache (fp32 and the
int8 view), and one training loss with its backward pass. Marked `slow` (about a minute on 2 busy cores):
`pytest -m slow tests/test_gpt_sovits_t2s_fullsize.py`.
"""

from __future__ import annotations

import pytest
import torch

from voxmith.engines.gpt_sovits.sampling import SamplingSettings
from voxmith.engines.gpt_sovits.t2s import T2SConfig, Text2SemanticModel
from voxmith.engines.gpt_sovits.t2s_generate import generate_semantic_candidates
from voxmith.engines.gpt_sovits.t2s_loss import t2s_training_loss
from voxmith.engines.gpt_sovits.t2s_precision import t2s_decoder_for
from voxmith.engines.precision import int8_supported

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model():
    m = Text2SemanticModel(T2SConfig())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in sorted(m.named_parameters()):
            noise = torch.randn(param.shape, generator=generator)
            param.copy_(1.0 + 0.1 * noise if "norm" in name and param.dim() == 1 else 0.02 * noise)
    assert 75e6 < sum(p.numel() for p in m.parameters()) < 80e6  # the official 77.5M v2 GPT
    return m.eval()


def test_generation_full_size(model):
    g = torch.Generator().manual_seed(1)
    phones, bert = torch.randint(0, 732, (20,), generator=g), torch.zeros(1024, 20)
    prompt = torch.randint(0, 1024, (25,), generator=g)
    views = [model] + ([t2s_decoder_for(model, "int8")] if int8_supported() else [])
    for view in views:
        takes = generate_semantic_candidates(view, phones, bert, prompt, SamplingSettings(),
                                             [torch.Generator().manual_seed(s) for s in (1, 2)], early_stop_num=2)
        assert len(takes) == 2 and all(1 <= t.numel() <= 2 and int(t.max()) < 1024 for t in takes)


def test_training_loss_full_size(model):
    g = torch.Generator().manual_seed(2)
    phones = torch.randint(1, 732, (2, 10), generator=g)
    codes = torch.randint(0, 1024, (2, 12), generator=g)
    model.train()
    try:
        result = t2s_training_loss(model, phones, torch.tensor([10, 7]), codes, torch.tensor([12, 9]),
                                   torch.zeros(2, 1024, 10))
        result.loss.backward()
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)
    assert torch.isfinite(result.loss) and result.target_count == 2 * 13
