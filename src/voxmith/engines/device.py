"""Choosing the compute device.

`auto` prefers CUDA, then Apple MPS, then CPU. Asking for a device that is not there is an error,
never a silent fall-back, and landing on the CPU while the machine has an NVIDIA GPU that torch
cannot use (a CPU-only torch build, the most common lost afternoon in this field) is a warning.

`cpu_info()` names the CPU and the instruction-set extensions that decide which reduced precision
is fast on it (VNNI, AVX512-BF16, AMX); engines choose their CPU defaults from it and benchmarks
record it next to every timing.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import warnings
from dataclasses import dataclass
from typing import Tuple

from voxmith.errors import DeviceError

CUDA_INSTALL_HINT = (
    "Install a CUDA build of PyTorch into voxmith's environment, e.g. "
    "'.venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cu124' "
    "(pick the index for your CUDA version at pytorch.org)."
)


class CpuFallbackWarning(UserWarning):
    """Raised as a warning when voxmith runs on the CPU although a GPU seems present."""


def nvidia_gpu_present() -> bool:
    """True if the machine has an NVIDIA driver, whatever torch thinks."""
    return os.path.exists("/proc/driver/nvidia/version") or shutil.which("nvidia-smi") is not None


def _cuda_status(torch) -> tuple[bool, int]:
    available = bool(torch.cuda.is_available())
    return available, (torch.cuda.device_count() if available else 0)


def _mps_available(torch) -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(requested: str = "auto") -> str:
    """Turn 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' into a device string torch accepts."""
    import torch

    requested = (requested or "auto").strip().lower()
    cuda_ok, cuda_count = _cuda_status(torch)
    if requested == "auto":
        if cuda_ok:
            return "cuda"
        if _mps_available(torch):
            return "mps"
        if nvidia_gpu_present():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            warnings.warn(
                f"An NVIDIA GPU is present but PyTorch {torch.__version__} ({build}) cannot use it; "
                f"running on the CPU, which is much slower. {CUDA_INSTALL_HINT}",
                CpuFallbackWarning, stacklevel=2,
            )
        return "cpu"
    if requested == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", requested)
    if match:
        if not cuda_ok:
            why = ("this PyTorch is a CPU-only build" if torch.version.cuda is None
                   else "no CUDA GPU is visible (check the driver and CUDA_VISIBLE_DEVICES)")
            raise DeviceError(f"Device '{requested}' was requested but {why}. "
                              f"{CUDA_INSTALL_HINT} Or use --device cpu.")
        index = int(match.group(1) or 0)
        if index >= cuda_count:
            raise DeviceError(f"Device '{requested}' was requested but only {cuda_count} CUDA "
                              f"device(s) exist (cuda:0..cuda:{cuda_count - 1}).")
        return requested
    if requested == "mps":
        if not _mps_available(torch):
            raise DeviceError("Device 'mps' was requested but Apple MPS is not available "
                              "(it needs an Apple-silicon Mac and a PyTorch build with MPS). Use --device cpu.")
        return "mps"
    raise DeviceError(f"Unknown device '{requested}'. Use auto, cpu, cuda, cuda:N or mps.")


def describe_torch() -> str:
    """One line about the installed torch build, for `voxmith info`."""
    import torch

    cuda_ok, count = _cuda_status(torch)
    parts = [f"torch {torch.__version__}"]
    parts.append(f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build")
    if cuda_ok:
        parts.append(f"{count} GPU(s): " + ", ".join(torch.cuda.get_device_name(i) for i in range(count)))
    if _mps_available(torch):
        parts.append("MPS available")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------- CPU features

# The instruction-set extensions that decide how fast reduced-precision matrix products run on x86:
# AVX-512 VNNI / AVX-VNNI (int8 dot products summed in int32), AVX512-BF16 (bf16 dot products) and
# AMX (tile units for bf16 and int8 matrices). Names as Linux spells them in /proc/cpuinfo.
CPU_FEATURE_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                     "amx_tile", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class CpuInfo:
    """What the CPU is and which of `CPU_FEATURE_FLAGS` it has (empty when unknown)."""

    model: str
    vendor: str = ""
    features: Tuple[str, ...] = ()
    logical_cpus: int = 0

    def has(self, flag: str) -> bool:
        return flag in self.features

    @property
    def vnni(self) -> bool:
        return self.has("avx512_vnni") or self.has("avx_vnni")

    @property
    def bf16(self) -> bool:
        """Native bf16 dot products (AVX512-BF16 or AMX-BF16)."""
        return self.has("avx512_bf16") or self.has("amx_bf16")

    @property
    def amx(self) -> bool:
        return self.has("amx_tile") and (self.has("amx_bf16") or self.has("amx_int8"))

    def summary(self) -> str:
        """One line for results files and `voxmith info`, e.g. 'AMD EPYC 9B14 (avx512f, avx512_vnni, ...)'."""
        shown = [flag for flag in CPU_FEATURE_FLAGS if flag in self.features]
        return f"{self.model} ({', '.join(shown) if shown else 'no AVX2/AVX-512/AMX features seen'})"

    def to_dict(self) -> dict:
        return {"model": self.model, "vendor": self.vendor, "features": list(self.features),
                "logical_cpus": self.logical_cpus, "vnni": self.vnni, "bf16": self.bf16, "amx": self.amx}


def parse_cpuinfo(text: str, logical_cpus: int = 0) -> CpuInfo:
    """A `CpuInfo` from the text of Linux's /proc/cpuinfo (the first processor's entry)."""
    fields: dict = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # one processor is enough: the others repeat it
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return CpuInfo(model=fields.get("model name", "") or platform.processor() or "unknown CPU",
                   vendor=fields.get("vendor_id", ""),
                   features=tuple(flag for flag in CPU_FEATURE_FLAGS if flag in flags),
                   logical_cpus=logical_cpus)


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU. Reads /proc/cpuinfo (Linux); elsewhere the model name and torch's vector
    level only (VNNI/BF16/AMX unknown, so feature-based choices take the safer branch)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            return parse_cpuinfo(handle.read(), os.cpu_count() or 0)
    except OSError:
        pass
    # Elsewhere (macOS, Windows) torch's own dispatch level tells AVX2 and AVX-512 apart.
    import torch

    level = torch.backends.cpu.get_cpu_capability()
    features = {"AVX2": ("avx2", "fma"), "AVX512": ("avx2", "fma", "avx512f")}.get(level, ())
    return CpuInfo(model=platform.processor() or platform.machine() or "unknown CPU", features=features,
                   logical_cpus=os.cpu_count() or 0)
