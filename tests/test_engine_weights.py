"""The weights fingerprint engines key their caches by (voxmith.engines.weights)."""

import copy

import torch

from voxmith.engines.weights import state_fingerprint


def test_same_values_same_fingerprint_any_change_another():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    twin = copy.deepcopy(model)
    assert state_fingerprint(model) == state_fingerprint(twin)  # values, not tensor identity
    with torch.no_grad():
        twin[0].weight[1, 2] += 1e-6
    assert state_fingerprint(model) != state_fingerprint(twin)
    twin = copy.deepcopy(model)
    twin[1].num_batches_tracked += 1  # an integer buffer counts too
    assert state_fingerprint(model) != state_fingerprint(twin)
    half = copy.deepcopy(model).to(torch.bfloat16)  # numpy has no bf16: read exactly as float32
    assert state_fingerprint(half) == state_fingerprint(copy.deepcopy(half).float())
