"""The fine-tuned piper-vc conversion: the analytic conversion plus a learnt residual (torch maths).

`FinetunedConversion` holds
- `base`: the enrolled `conversion.ConversionParams` as buffers, so a checkpoint carries the
  conversion it was trained on and works whatever clips the voice has later;
- `net`: a small 1-D convolutional network over a few frames of context (5 ms frames) that
  predicts, on speech frames, a residual for the converted mel-cepstrum c[1:] (in units of the
  target's standard deviation) and a per-band correction of the aperiodicity in dB (breathiness
  is part of a voice, and the analytic map leaves joe's aperiodicity untouched).
The last layer starts at zero, so an untrained model gives exactly the analytic conversion.

Over-smoothing: frames aligned by DTW between two speakers never match exactly, and mean squared
error then pulls every frame towards the mean of its neighbours, which muffles the voice (the
ridge correction's variance restore exists for the same reason). The loss therefore also matches
the per-dimension spread of the output to the target's ("global variance" term).

No file or audio I/O here: the engine and `training.py` feed arrays in and out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from voxmith.engines.piper_vc import world
from voxmith.engines.piper_vc.conversion import ConversionParams, Stats, speech_mask

MCEP_DIMS = world.ORDER  # c[1:]; c[0] (energy) stays joe's, as in the analytic conversion
# Aperiodicity bands (Hz). Finer than WORLD's own coding (2 bands at 22.05 kHz) because
# breathiness shows mostly between 1 and 6 kHz.
AP_BAND_EDGES_HZ = (0.0, 1000.0, 2000.0, 3000.0, 4500.0, 6000.0, 8000.0, 11025.0)
AP_BANDS = len(AP_BAND_EDGES_HZ) - 1
AP_FLOOR = 1e-4  # -80 dB: D4C reports ~0.001 on clean harmonics
AP_SCALE_DB = 10.0  # aperiodicity inputs and loss are in units of this many dB
C0_SCALE = 2.0  # c[0] input: nepers below the utterance's loudest frame, divided by this
INPUT_DIMS = MCEP_DIMS + AP_BANDS + 2  # + voiced flag + c0


@dataclass(frozen=True)
class PostnetConfig:
    hidden: int = 96
    layers: int = 3
    kernel: int = 5  # frames each layer sees: 3 layers of 5 = 13 frames (65 ms) of context
    gv_weight: float = 1.0  # global-variance term (see module docstring)
    ap_weight: float = 0.3  # aperiodicity term next to the mel-cepstrum term
    # Penalty on the mean squared mel-cepstrum residual: a few clips are easy to memorise, and the
    # further the output strays from the analytic map the more words Whisper misses
    # (docs/piper_vc_tuning.md has the runs behind these weights).
    delta_weight: float = 1.0
    dropout: float = 0.0  # on the hidden layers, while training only


def _band_bins() -> list:
    freqs = np.arange(world.FFT_SIZE // 2 + 1) * world.SAMPLE_RATE_HZ / world.FFT_SIZE
    return [np.flatnonzero((freqs >= lo) & (freqs < hi if hi < AP_BAND_EDGES_HZ[-1] else freqs <= hi))
            for lo, hi in zip(AP_BAND_EDGES_HZ[:-1], AP_BAND_EDGES_HZ[1:])]


def ap_bands_db(ap: np.ndarray) -> np.ndarray:
    """(T, AP_BANDS) mean aperiodicity in dB per band."""
    db = 20.0 * np.log10(np.maximum(ap, AP_FLOOR))
    return np.stack([db[:, bins].mean(axis=1) for bins in _band_bins()], axis=1)


def apply_ap_correction(ap: np.ndarray, delta_db: np.ndarray) -> np.ndarray:
    """Scale `ap` by per-band dB offsets, interpolated linearly between band centres so the
    correction has no steps across frequency. A zero offset leaves `ap` exactly as it was."""
    freqs = np.arange(ap.shape[1]) * world.SAMPLE_RATE_HZ / world.FFT_SIZE
    centres = 0.5 * (np.asarray(AP_BAND_EDGES_HZ[:-1]) + np.asarray(AP_BAND_EDGES_HZ[1:]))
    out = ap.copy()
    rows = np.flatnonzero(np.any(delta_db != 0, axis=1))
    for t in rows:
        gain = 10.0 ** (np.interp(freqs, centres, delta_db[t]) / 20.0)
        out[t] = np.minimum(ap[t] * gain, 1.0)
    return out


def net_inputs(mcep: np.ndarray, voiced: np.ndarray, ap_db: np.ndarray, params: ConversionParams) -> np.ndarray:
    """(INPUT_DIMS, T) float32 network input from converted features: c[1:] standardised by the
    target's voiced statistics, the voicing flag, c0 relative to the loudest frame, and the
    aperiodicity bands (`ap_bands_db`)."""
    z = (mcep[:, 1:] - params.tgt_voiced.mean) / params.tgt_voiced.std
    c0 = (mcep[:, 0] - mcep[:, 0].max()) / C0_SCALE
    ap_in = ap_db / AP_SCALE_DB
    return np.concatenate([z, voiced[:, None].astype(np.float64), c0[:, None], ap_in], axis=1).T.astype(np.float32)


def speech_frames(mcep: np.ndarray) -> np.ndarray:
    """Frames the residual may change: within 40 dB of the loudest (same rule as the statistics),
    so pauses and digital silence stay as the analytic conversion made them."""
    return speech_mask(mcep)


class ResidualNet(nn.Module):
    def __init__(self, config: PostnetConfig, device: Optional[str] = None):
        super().__init__()
        layers = []
        width = INPUT_DIMS
        for _ in range(config.layers):
            layers += [nn.Conv1d(width, config.hidden, config.kernel, padding=config.kernel // 2, device=device),
                       nn.GELU(), nn.Dropout(config.dropout)]
            width = config.hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv1d(width, MCEP_DIMS + AP_BANDS, 1, device=device)
        # Zero output layer: step 0 is the analytic conversion, bit for bit.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, INPUT_DIMS, T) -> (B, MCEP_DIMS + AP_BANDS, T) residuals."""
        return self.out(self.body(inputs))


class BaseConversion(nn.Module):
    """`ConversionParams` as float64 buffers (state-dict keys `base.<field>__<mean|std>`)."""

    def __init__(self, params: ConversionParams):
        super().__init__()
        for name, value in params.to_arrays().items():
            self.register_buffer(name.replace(".", "__"), torch.as_tensor(np.asarray(value, dtype=np.float64)))

    def params(self) -> ConversionParams:
        arrays = {name.replace("__", "."): buf.detach().cpu().numpy() for name, buf in self.named_buffers()}
        return ConversionParams.from_arrays(arrays)


def _placeholder_params() -> ConversionParams:
    """Zero-sized stand-in, replaced by load_state_dict (buffers take the loaded shapes)."""
    d = MCEP_DIMS
    unit = Stats(np.zeros(d), np.ones(d))
    one = Stats(np.zeros(()), np.ones(()))
    return ConversionParams(warp=0.0, src_voiced=unit, src_unvoiced=unit, tgt_voiced=unit, tgt_unvoiced=unit,
                            src_lf0=one, tgt_lf0=one, ridge=np.zeros((d + 1, d)), ridge_mix=0.0,
                            ot_voiced=np.eye(d), ot_unvoiced=np.eye(d), cov_mix=0.0)


class FinetunedConversion(nn.Module):
    """The training task's model. `forward(batch)` returns {"cepstral": loss} (see `LOSSES`);
    `residuals` is what synthesis uses."""

    def __init__(self, params: ConversionParams, config: PostnetConfig = PostnetConfig(), *,
                 initialise: bool = True):
        super().__init__()
        self.config = config
        self.base = BaseConversion(params)
        if initialise:  # random initial weights from torch's global RNG (training seeds it)
            self.net = ResidualNet(config)
        else:  # weights about to be loaded: allocate them without drawing from any RNG
            self.net = ResidualNet(config, device="meta").to_empty(device="cpu")
        # Architecture in the state dict too, so a checkpoint rebuilds its own model.
        self.register_buffer("arch", torch.tensor([config.hidden, config.layers, config.kernel]))

    @classmethod
    def from_state_dict(cls, state: Dict[str, torch.Tensor]) -> "FinetunedConversion":
        if "arch" not in state or not any(k.startswith("base.") for k in state):
            raise ValueError("not a piper-vc fine-tuning checkpoint (no 'arch' or 'base.*' entries)")
        hidden, layers, kernel = (int(v) for v in state["arch"].tolist())
        model = cls(_placeholder_params(), PostnetConfig(hidden=hidden, layers=layers, kernel=kernel),
                    initialise=False)
        model.load_state_dict(state)
        model.eval()
        return model

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Base buffers take the checkpoint's shapes (the placeholder's are only stand-ins).
        for name, buf in list(self.base.named_buffers()):
            key = f"{prefix}base.{name}"
            if key in state_dict and state_dict[key].shape != buf.shape:
                self.base.register_buffer(name, torch.empty_like(state_dict[key]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def residuals(self, inputs: torch.Tensor, speech: torch.Tensor) -> tuple:
        """(mcep residual in target-std units, aperiodicity offset in dB), zero off speech."""
        out = self.net(inputs) * speech.unsqueeze(1)
        return out[:, :MCEP_DIMS], out[:, MCEP_DIMS:] * AP_SCALE_DB

    def forward(self, batch: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {"cepstral": self.loss(batch)}

    def loss(self, batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        """Masked MSE of the standardised mel-cepstrum, plus the global-variance and
        aperiodicity terms. Batch tensors: inputs (B, C, T), speech (B, T), target_z (B, D, T),
        target_ap_db (B, AP_BANDS, T), mask (B, T; aligned speech frames of agreeing voicing),
        voiced_mask (B, T; the voiced subset, for the aperiodicity)."""
        inputs = batch["inputs"]
        dz, dap = self.residuals(inputs, batch["speech"])
        pred = inputs[:, :MCEP_DIMS] + dz
        mask = batch["mask"].unsqueeze(1)
        frames = mask.sum().clamp_min(1.0)
        mse = ((pred - batch["target_z"]) ** 2 * mask).sum() / (frames * MCEP_DIMS)
        delta = (dz ** 2 * mask).sum() / (frames * MCEP_DIMS)
        gv = _log_std_gap(pred, batch["target_z"], mask)
        voiced = batch["voiced_mask"].unsqueeze(1)
        ap_in = inputs[:, MCEP_DIMS + 2:] * AP_SCALE_DB
        ap_err = ((ap_in + dap - batch["target_ap_db"]) / AP_SCALE_DB) ** 2 * voiced
        ap = ap_err.sum() / (voiced.sum().clamp_min(1.0) * AP_BANDS)
        return mse + self.config.gv_weight * gv + self.config.ap_weight * ap + self.config.delta_weight * delta


def _log_std_gap(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of (log std(pred) - log std(target))^2 over the masked frames."""
    n = mask.sum().clamp_min(2.0)

    def log_std(x: torch.Tensor) -> torch.Tensor:
        mean = (x * mask).sum(dim=(0, 2)) / n
        var = (((x - mean[None, :, None]) ** 2) * mask).sum(dim=(0, 2)) / (n - 1)
        return 0.5 * torch.log(var + 1e-6)

    return ((log_std(pred) - log_std(target)) ** 2).mean()


def refine(model: FinetunedConversion, converted: world.WorldFeatures, params: Optional[ConversionParams] = None,
           scale: float = 1.0) -> world.WorldFeatures:
    """Apply the learnt residual to features the analytic conversion produced (one utterance),
    times `scale` (1: as trained; 0: the analytic conversion unchanged)."""
    params = params or model.base.params()
    speech = speech_frames(converted.mcep)
    x = torch.from_numpy(net_inputs(converted.mcep, converted.voiced, ap_bands_db(converted.ap), params))[None]
    with torch.no_grad():
        dz, dap = model.residuals(x, torch.from_numpy(speech.astype(np.float32))[None])
    if scale != 1.0:
        dz, dap = dz * scale, dap * scale
    mcep = converted.mcep.copy()
    mcep[:, 1:] += dz[0].double().numpy().T * params.tgt_voiced.std
    delta = dap[0].double().numpy().T * converted.voiced[:, None]
    return world.WorldFeatures(f0=converted.f0, mcep=mcep, ap=apply_ap_correction(converted.ap, delta))


__all__ = ["FinetunedConversion", "PostnetConfig", "refine", "net_inputs", "ap_bands_db",
           "apply_ap_correction", "speech_frames"]
