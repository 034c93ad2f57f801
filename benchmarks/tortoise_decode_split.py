"""Where one AR decode step's time goes, voxmith side, full size (random weights), fp32 (issue 18).

For a batch of ROWS with 228 cached positions it times, interleaved and 7 times each (min and median):
the whole step (30 GPT blocks + final norm + mel head) and its 121 linear layers alone on the same
shapes, for voxmith's fp32 layers (torch.addmm, as the official GPT-2 Conv1D) and for the same fp32
weights pre-packed for oneDNN (torch.ops.mkldnn, private API: an experiment, not used by the engine;
results differ from addmm by rounding, ~6e-6). The linears' share of the step bounds what fusing the
small ops can gain at equal precision. Threads: $T (default 1). Prints only; no results file.

    PYTHONPATH=src T=1 .venv/bin/python benchmarks/tortoise_decode_split.py 1 float32,float32-packed
    PYTHONPATH=src T=1 .venv/bin/python benchmarks/tortoise_decode_split.py 16 float32,float32-packed,int8
"""
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn as nn

warnings.filterwarnings("ignore")
torch.set_num_threads(int(os.environ.get("T", "1")))
from voxmith.engines.tortoise.autoregressive import KVCache, UnifiedVoice
from voxmith.engines.precision import shallow_tree as _shallow_tree
from voxmith.engines.tortoise.precision import decoder_for
torch.manual_seed(0)
ar = UnifiedVoice().eval()
rows = int(sys.argv[1]); precs = sys.argv[2].split(",")
c = ar.config

class PackedF32(nn.Module):
    def __init__(self, conv, rows):
        super().__init__()
        self.n_out = conv.weight.shape[1]
        self.w = torch.ops.mkldnn._reorder_linear_weight(conv.weight.t().contiguous(), rows)
        self.b = conv.bias.detach()
    def forward(self, x):
        out = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, x.shape[-1]), self.w, self.b, "none", [], "")
        return out.view(*x.shape[:-1], self.n_out)

def packed(ar):
    d = _shallow_tree(ar).eval()
    for b in d.gpt.h:
        for parent, names in ((b.attn, ("c_attn", "c_proj")), (b.mlp, ("c_fc", "c_proj"))):
            for n in names: setattr(parent, n, PackedF32(getattr(parent, n), rows))
    return d

with torch.no_grad():
    decs = {p: (packed(ar) if p == "float32-packed" else decoder_for(ar, p)) for p in precs}
    cache = KVCache(c.layers, rows, c.heads, 400, 64, torch.zeros(1))
    cache.keys = [torch.randn_like(k) for k in cache.keys]; cache.values = [torch.randn_like(k) for k in cache.values]
    x = torch.randn(rows, 1, 1024); xs = {1024: torch.randn(rows, 1, 1024), 4096: torch.randn(rows, 1, 4096)}
    fns = {}
    for p, dec in decs.items():
        def step(dec=dec):
            cache.length = 228
            return dec._logits(dec.gpt(x, cache)[:, -1])
        lins = []
        for b in dec.gpt.h:
            lins += [(b.attn.c_attn, 1024), (b.attn.c_proj, 1024), (b.mlp.c_fc, 1024), (b.mlp.c_proj, 4096)]
        def gemms(lins=lins, dec=dec):
            for l, i in lins: l(xs[i])
            dec.mel_head(xs[1024][:, 0])
        fns[f"{p} step"] = step; fns[f"{p} linears"] = gemms
    ts = {k: [] for k in fns}
    for f in fns.values(): f()
    for r in range(7):
        for k, f in fns.items():
            t = time.perf_counter(); f(); ts[k].append(time.perf_counter() - t)
    ref = decs[precs[0]]
    print(open("/proc/loadavg").read().strip(), f"rows={rows} threads={torch.get_num_threads()}")
    for k, v in ts.items():
        print(f"  {k:24s} min {min(v)*1e3:8.1f} ms  median {statistics.median(v)*1e3:8.1f} ms", flush=True)
