"""Choosing the compute device.

`auto` prefers CUDA, then Apple MPS, then CPU. Asking for a device that is not there is an error,
never a silent fall-back, and landing on the CPU while the machine has an NVIDIA GPU that torch
cannot use (a CPU-only torch build, the most common lost afternoon in this field) is a warning.
"""

from __future__ import annotations

import os
import re
import shutil
import warnings

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
