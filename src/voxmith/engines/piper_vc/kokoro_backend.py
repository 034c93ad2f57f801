"""The runtime that runs Kokoro-82M's float graph: onnxruntime, or OpenVINO when asked for.

OpenVINO computing in bfloat16 (AVX-512 BF16 / AMX) runs Kokoro in about half onnxruntime's CPU
time, but its output is not the same voice: on all five styles x 6 sentences DistillMOS fell from
4.17 to 1.40 and the GE2E similarity to float32 output was 0.73 (benchmarks/kokoro_speed.py,
docs/piper_vc_tuning.md). OpenVINO in float32 was no faster than onnxruntime. So onnxruntime
(float graph with 2-D convolutions) runs Kokoro unless `VOXMITH_KOKORO_BACKEND` forces OpenVINO
(benchmarks and experiments; `openvino` is optional and not a dependency).

The choice (`choose`) is a pure function of the override, whether openvino imports, and the CPU's
capabilities as OpenVINO reports them. OpenVINO compiles the graph for the CPU on first use (5-16
s); the compiled model is exported once to a blob beside the float graph (atomically: two
processes compiling at once both write whole files, the last one stays) and imported afterwards,
keyed by the graph, the OpenVINO version, the precision, the thread count and the CPU.

Not here: the graph rewrite (kokoro_model.py), text, styles and synthesis (kokoro_voice.py).
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import onnxruntime

from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_write_bytes

try:  # optional: only a forced backend uses it
    import openvino
except Exception:  # pragma: no cover - not installed, or broken (a native library that fails to load)
    openvino = None

ENV_VAR = "VOXMITH_KOKORO_BACKEND"
# "openvino" takes bf16 where the CPU has it, else float32 (bf16 degrades Kokoro: see above).
BACKENDS = ("openvino", "openvino-bf16", "openvino-f32", "onnxruntime")
# Two intra-op threads: on 2 idle cores they halve Kokoro's wall time against one (both runtimes),
# and the engine serialises Kokoro calls (kokoro_voice.KokoroModel), so one call may use two cores
# while other requests' WORLD analysis and rendering wait or run beside it. More threads were not
# measured (the development machine has 2 cores); one core gets one thread. With the second core
# busy the second thread only adds cost (docs/piper_vc_tuning.md); the output is bit-identical.
THREADS = min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class BackendChoice:
    runtime: str  # "openvino" or "onnxruntime"
    precision: str  # OpenVINO's inference precision ("bf16", "f32"); "float" for onnxruntime
    reason: str

    @property
    def label(self) -> str:
        return self.runtime if self.runtime == "onnxruntime" else f"openvino-{self.precision}"


def cpu_capabilities() -> Sequence[str]:
    """What OpenVINO's CPU plugin says this CPU can compute in ("BF16", "FP32", ...); empty
    without openvino."""
    if openvino is None:
        return ()
    return tuple(openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def choose(override: str, openvino_available: bool, capabilities: Sequence[str]) -> BackendChoice:
    """The runtime for Kokoro: `override` (the env var's value, "" for none) when given, else
    onnxruntime (OpenVINO's bf16 degrades the voice, its f32 is no faster)."""
    override = override.strip().lower()
    if override and override not in BACKENDS:
        raise VoxmithError(f"{ENV_VAR}={override!r} is not a Kokoro backend; use one of "
                           f"{', '.join(BACKENDS)}, or unset it to let voxmith choose.")
    bf16 = "BF16" in capabilities
    if override.startswith("openvino"):
        if not openvino_available:
            raise VoxmithError(f"{ENV_VAR}={override} but the openvino package does not import here; "
                               "install it (pip install openvino) or unset the variable.")
        if override == "openvino-bf16" and not bf16:
            raise VoxmithError(f"{ENV_VAR}=openvino-bf16 but this CPU has no bfloat16 support; "
                               "use openvino-f32 or unset the variable.")
        precision = "bf16" if override == "openvino-bf16" or (override == "openvino" and bf16) else "f32"
        return BackendChoice("openvino", precision, f"forced by {ENV_VAR}={override}")
    if override == "onnxruntime":
        return BackendChoice("onnxruntime", "float", f"forced by {ENV_VAR}=onnxruntime")
    return BackendChoice("onnxruntime", "float", "the default: OpenVINO's bf16 degrades Kokoro's voice "
                                                  "and its f32 is no faster than onnxruntime")


def choose_here() -> BackendChoice:
    """The choice for this machine and environment."""
    override = os.environ.get(ENV_VAR, "")
    # OpenVINO is asked about the CPU only when a forced backend needs it: a broken openvino
    # install must not break the default runtime.
    wants_openvino = override.strip().lower().startswith("openvino") and openvino is not None
    return choose(override, openvino is not None, cpu_capabilities() if wants_openvino else ())


class OnnxruntimeSession:
    """Kokoro's float graph (with 2-D convolutions) in onnxruntime."""

    def __init__(self, path: Path, threads: int = THREADS):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                                    providers=["CPUExecutionProvider"])

    def run(self, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, feeds)[0]


def openvino_config(precision: str, threads: int) -> dict:
    # One stream and the latency hint: one sentence at a time, as fast as possible (the
    # throughput hint would split the cores into streams that only concurrent requests fill).
    # No pinning: OpenVINO would bind every process's threads to the same first cores, so two
    # voxmith processes (web UI and CLI, several workers) would share two cores of a larger CPU.
    return {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
            "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "ENABLE_CPU_PINNING": False}


def compiled_blob_path(graph: Path, precision: str, threads: int, device_name: str,
                       capabilities: Sequence[str]) -> Path:
    """Where the compiled model for `graph` is cached: beside it, named by everything the compiled
    code depends on (a blob compiled for another CPU or OpenVINO version is never imported)."""
    version = openvino.__version__.split("-")[0] if openvino is not None else "none"
    cpu = hashlib.sha1(f"{device_name}|{','.join(sorted(capabilities))}".encode()).hexdigest()[:10]
    return graph.with_name(f"{graph.stem}.openvino-{version}-{precision}-t{threads}-{cpu}.blob")


def import_compiled(core, blob: Path, config: dict):
    """The compiled model exported to `blob`, or None when there is none or it does not import."""
    try:
        data = blob.read_bytes()
    except OSError:
        return None
    try:
        return core.import_model(data, "CPU", config)
    except RuntimeError:  # damaged or from an incompatible build: compiled again and overwritten
        return None


class OpenvinoSession:
    """Kokoro's float graph compiled by OpenVINO for this CPU. One infer request, used under a
    lock (OpenVINO's requests are not thread-safe; a second request would only compete for the
    same cores)."""

    def __init__(self, path: Path, precision: str, threads: int = THREADS):
        core = openvino.Core()
        config = openvino_config(precision, threads)
        blob = compiled_blob_path(path, precision, threads, core.get_property("CPU", "FULL_DEVICE_NAME"),
                                  core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        self.compiled = import_compiled(core, blob, config)
        self.compiled_now = self.compiled is None  # whether this process paid the compilation
        if self.compiled is None:
            self.compiled = core.compile_model(str(path), "CPU", config)
            try:
                exported = self.compiled.export_model()  # BytesIO in recent releases, bytes before
                atomic_write_bytes(blob, exported.getvalue() if hasattr(exported, "getvalue") else exported)
            except OSError:  # a read-only cache only costs the next process the compilation
                pass
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)
        self.lock = threading.Lock()

    def run(self, feeds: Dict[str, np.ndarray]) -> np.ndarray:
        with self.lock:
            return np.array(self.request.infer(feeds)[self.output], np.float32, copy=True)


def open_session(choice: BackendChoice, graph: Path, threads: int = THREADS):
    """A session (`run(feeds) -> audio`) for `choice` on the ONNX graph at `graph`."""
    if choice.runtime == "openvino":
        return OpenvinoSession(graph, choice.precision, threads)
    return OnnxruntimeSession(graph, threads)


__all__ = ["ENV_VAR", "BACKENDS", "THREADS", "BackendChoice", "cpu_capabilities", "choose", "choose_here",
           "OnnxruntimeSession", "OpenvinoSession", "openvino_config", "compiled_blob_path", "import_compiled", "open_session"]
