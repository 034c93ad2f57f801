"""HuBERT content features for GPT-SoVITS: `chinese-hubert-base` run through `transformers.HubertModel`.

    hubert = HubertFeatures.load(folder, device="cpu")       # folder with config.json + weights
    feats = hubert.reference_features(wav_16k)                # (samples,) -> (1, 768, frames) at 50 Hz
    codes = sovits.extract_codes(feats)                       # -> (1, frames // 2) prompt codes

What the official code does (`TTS_infer_pack/TTS.py: _set_prompt_semantic`): the 16 kHz reference
(3-10 s, else refused) gets `int(32000 * 0.3)` = 9600 zeros appended - 0.3 s at the model's 32 kHz
rate, so 0.6 s at 16 kHz - and goes straight into `HubertModel` (no feature-extractor normalisation);
the features are `last_hidden_state` transposed to `(batch, 768, frames)`. The training recipe
(`prepare_datasets/2-get-hubert-wav32k.py`) appends nothing and feeds the loudness-mixed clip scaled
to a peak of about 1145 instead of 1 (`training_features`); the model's first convolution has no bias
and is followed by a group norm, so the scale matters little but is kept for fidelity.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch

from voxmith.errors import AudioError

SAMPLE_RATE_HZ = 16000
REFERENCE_TAIL_ZEROS = 9600           # int(32000 * 0.3): official tail of silence (0.6 s at 16 kHz)
REFERENCE_MIN_SAMPLES = 48000         # 3 s at 16 kHz
REFERENCE_MAX_SAMPLES = 160000        # 10 s at 16 kHz
TRAINING_INPUT_SCALE = 1145.14        # official full-scale value of the HuBERT input in the training recipe
FEATURE_DIM = 768


def check_reference_length(num_samples_16k: int) -> None:
    """The official rule: a reference must last 3 to 10 s."""
    if not REFERENCE_MIN_SAMPLES <= num_samples_16k <= REFERENCE_MAX_SAMPLES:
        raise AudioError(f"The reference clip lasts {num_samples_16k / SAMPLE_RATE_HZ:.1f} s; GPT-SoVITS needs "
                         "3 to 10 s of speech. Pick or cut a clip of that length.")


class HubertFeatures:
    """A loaded `HubertModel` with the two ways GPT-SoVITS feeds it."""

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> "HubertFeatures":
        from transformers import HubertModel

        model = HubertModel.from_pretrained(str(folder), local_files_only=True)
        return cls(model.to(device=device, dtype=dtype))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @torch.no_grad()
    def features(self, wav_16k: torch.Tensor) -> torch.Tensor:
        """`(batch, samples)` 16 kHz -> `last_hidden_state` as `(batch, 768, frames)`."""
        out = self.model(wav_16k.to(self.device, self.dtype))
        return out.last_hidden_state.transpose(1, 2)

    def reference_features(self, wav_16k: torch.Tensor | np.ndarray, check_length: bool = True) -> torch.Tensor:
        """Features of an inference reference `(samples,)`: length checked, 9600 zeros appended."""
        wav = torch.as_tensor(np.asarray(wav_16k, dtype=np.float32)) if isinstance(wav_16k, np.ndarray) else wav_16k
        if wav.dim() != 1:
            raise ValueError(f"reference audio must be mono (samples,), got shape {tuple(wav.shape)}")
        if check_length:
            check_reference_length(wav.shape[0])
        wav = torch.cat([wav.float(), wav.new_zeros(REFERENCE_TAIL_ZEROS, dtype=torch.float32)])
        return self.features(wav.unsqueeze(0))

    def training_features(self, training_wav_16k: torch.Tensor, scale: Optional[float] = TRAINING_INPUT_SCALE):
        """Features of a training clip (already loudness-mixed by `spectrogram.training_audio`, full scale 1)."""
        wav = training_wav_16k.float() * (scale or 1.0)
        return self.features(wav.unsqueeze(0) if wav.dim() == 1 else wav)
