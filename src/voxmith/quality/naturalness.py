"""Predicted naturalness (MOS) of speech with DistillMOS (the `distillmos` package, MIT).

DistillMOS is a small convolutional + transformer model distilled from an XLS-R based speech
quality model; its weights ship inside the wheel, so scoring works offline. It takes 16 kHz mono
float audio and returns a mean opinion score on the usual 1-5 scale (clean real speech scores
about 4-4.5, buzzy vocoder output 2 or less).

The torchaudio stand-in: `distillmos` (and `xls_r_sqa`, whose model classes it reuses) import
`torchaudio` at module level but use it only for file I/O and MFCC front ends that DistillMOS
never calls. No CPU torchaudio build matches voxmith's torch, so both packages are installed
with `--no-deps` (Makefile) and, if torchaudio is absent, an empty module object is registered
under that name in `sys.modules` just for the import. Code that later imports the real
torchaudio is unaffected when it exists; when it does not, the stand-in is removed again after
the import so nothing else mistakes it for the real library.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import sys
import types
from typing import Iterator, Sequence

import numpy as np

from voxmith.audio.dsp import resample
from voxmith.errors import VoxmithError

MOS_MODEL_ID = "distillmos-0.9.1-v7"  # bump when the scoring procedure changes
MOS_RATE_HZ = 16000
# Shorter inputs are padded by the model to 7.7 s anyway; below ~0.3 s of audio the score is noise.
MIN_SECONDS = 0.3


class NaturalnessUnavailable(VoxmithError):
    """The DistillMOS package is not installed."""


@contextlib.contextmanager
def _torchaudio_stand_in() -> Iterator[None]:
    """Register an empty `torchaudio` module for the duration of the import if none is installed
    (see the module docstring)."""
    if "torchaudio" in sys.modules or importlib.util.find_spec("torchaudio") is not None:
        yield
        return
    stand_in = types.ModuleType("torchaudio")
    stand_in.__doc__ = "voxmith stand-in: distillmos imports torchaudio but does not use it for scoring"
    sys.modules["torchaudio"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("torchaudio") is stand_in:
            del sys.modules["torchaudio"]


def naturalness_installed() -> bool:
    """Whether DistillMOS can be imported (found, not loaded)."""
    return importlib.util.find_spec("distillmos") is not None


def _load_model():
    try:
        with _torchaudio_stand_in(), contextlib.redirect_stdout(io.StringIO()):  # it prints on load
            import distillmos

            model = distillmos.ConvTransformerSQAModel()
    except ImportError as err:
        raise NaturalnessUnavailable(
            f"DistillMOS is not installed ({err}); install it with "
            "`pip install --no-deps distillmos==0.9.1 xls-r-sqa==0.1.0` (see the Makefile).") from None
    model.eval()
    return model


class NaturalnessModel:
    """DistillMOS on CPU, one clip at a time."""

    def __init__(self):
        import torch

        self._torch = torch
        self._model = _load_model()

    def score(self, samples: np.ndarray, sample_rate_hz: int) -> float:
        """Predicted MOS (1-5) of one mono clip at any sample rate."""
        x = resample(np.asarray(samples, dtype=np.float32), sample_rate_hz, MOS_RATE_HZ)
        if x.size < MIN_SECONDS * MOS_RATE_HZ or not np.any(x):
            return 1.0  # nothing to judge: the floor of the scale
        with self._torch.inference_mode():
            out = self._model(self._torch.from_numpy(np.ascontiguousarray(x))[None])
        return float(out.reshape(-1).mean())

    def score_many(self, clips: Sequence[tuple[np.ndarray, int]]) -> list[float]:
        return [self.score(s, r) for s, r in clips]


@functools.lru_cache(maxsize=1)
def get_naturalness_model() -> NaturalnessModel:
    """One shared model per process (loading takes about a second)."""
    return NaturalnessModel()
