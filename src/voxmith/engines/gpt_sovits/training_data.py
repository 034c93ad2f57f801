"""The features GPT-SoVITS fine-tuning trains on, computed once per dataset line and cached.

The official recipe prepares a dataset in three passes (`GPT_SoVITS/prepare_datasets/`), and so do
we, per `TrainingLine` (a clip and its transcript):
1. text (`1-get-text.py`): phone ids and normalised text of the transcript (`frontend.phones_for`,
   after the official replacements '%' -> '-' and '￥' -> ','), language from the text's script
   (`resolve_language(..., "auto")`); BERT features only exist for Chinese, which fine-tuning does not
   read yet (a Chinese transcript is refused rather than trained with zero features);
2. audio (`2-get-hubert-wav32k.py`): the clip at 32 kHz, loudness-mixed (`spectrogram.training_audio`:
   half peak-normalised to 0.95, half as is) and stored as 16-bit as the official wav32k folder is
   (then read back / 32768); clips peaking above 2.2 are refused as the official recipe skips them.
   HuBERT features (768 x frames at 50 Hz) of the same mix scaled to 1145.14 and resampled to 16 kHz
   (voxmith's soxr resampler instead of librosa's: same band limit, different filter);
3. semantic codes (`3-get-semantic.py`): the HuBERT features through the (pretrained, frozen) SoVITS
   quantiser of the version being fine-tuned, `SoVITS.extract_codes`, 25 Hz;
4. v2Pro/v2ProPlus only (`2-get-sv.py`): the speaker-verification embedding (20480 values) of the
   stored 32 kHz clip (the int16-grid wave of step 2) resampled to 16 kHz, by ERes2NetV2
   (`SpeakerVerifier.embed`); voxmith's soxr resampler instead of the official torchaudio
   `Resample(32000, 16000)`.

Cache: `<cache_dir>/gpt-sovits-ft<CACHE_VERSION>/<models_key>/<line key>.npz`, one file per line,
keyed by the audio file's bytes and the transcript, under a key of the models that made the features
(the HuBERT model, the SoVITS quantiser and, for v2Pro/v2ProPlus, the speaker-verification model:
`models_key`). Each file is written atomically, so an
interrupted preparation resumes with the lines already done and a half-written file never exists.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch

from voxmith.audio import load_audio
from voxmith.audio.dsp import resample
from voxmith.engines.base import TrainingLine
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path
from voxmith.progress import ProgressCallback, report

from .frontend import phones_for, resolve_language
from .hubert import TRAINING_INPUT_SCALE
from .spectrogram import SAMPLE_RATE_HZ, TRAINING_MAX_PEAK, training_audio

HUBERT_RATE_HZ = 16000
# Bump when cached features would come out differently.
CACHE_VERSION = "1"
INT16_SCALE = 32768.0


@dataclass
class LineFeatures:
    """One dataset line as both training stages read it."""

    phone_ids: np.ndarray  # (phones,) int64
    text: str  # normalised text
    language: str
    wave_32k: np.ndarray  # (samples,) float32, loudness-mixed, on the int16 grid
    hubert: np.ndarray  # (768, frames) float32, 50 Hz
    codes: np.ndarray  # (frames // 2,) int64, 25 Hz
    sv: Optional[np.ndarray] = None  # (20480,) float32: v2Pro/v2ProPlus speaker-verification embedding

    @property
    def duration_s(self) -> float:
        return self.wave_32k.shape[0] / SAMPLE_RATE_HZ


def line_key(line: TrainingLine) -> str:
    try:
        audio = Path(line.audio_path).read_bytes()
    except OSError as err:
        raise VoxmithError(f"Training line audio '{line.audio_path}' cannot be read: {err}.") from None
    h = hashlib.sha1()
    for part in (audio, line.text.strip().encode("utf-8")):
        h.update(hashlib.sha1(part).digest())
    return h.hexdigest()[:20]


def models_key(hubert, sovits, verifier=None) -> str:
    """A short fingerprint of the weights that make HuBERT features, codes and speaker embeddings (a
    few values of each model's parameters and their shapes): stock models share it, other weights
    get their own cache."""
    h = hashlib.sha1()
    models = (hubert.model, sovits.ssl_proj, sovits.quantizer) + ((verifier.model,) if verifier is not None else ())
    for model in models:
        for name, p in model.state_dict().items():
            flat = p.detach().reshape(-1)
            h.update(name.encode())
            h.update(str(tuple(p.shape)).encode())
            h.update(flat[:16].float().cpu().numpy().tobytes())
            h.update(np.float64(flat.float().sum().item()).tobytes())
    return h.hexdigest()[:16]


def text_features(text: str):
    """(phone ids, normalised text, language) of a transcript, as the official 1-get-text.py."""
    cleaned = text.strip().replace("%", "-").replace("\uffe5", ",")
    language = resolve_language(cleaned, "auto")
    if language == "zh":
        raise VoxmithError(f"gpt-sovits fine-tuning cannot use the Chinese transcript '{text[:40]}' yet: the GPT "
                           "stage would need its BERT features, which voxmith computes only for synthesis.")
    ids, _, normalized = phones_for(cleaned, language)
    return np.asarray(ids, dtype=np.int64), normalized, language


@torch.no_grad()
def compute_line(line: TrainingLine, hubert, sovits, verifier=None) -> dict:
    """The arrays of one line (see the module docstring); VoxmithError for a line the recipe refuses.
    `verifier` (a `SpeakerVerifier`, v2Pro/v2ProPlus) adds the speaker embedding "sv"."""
    phone_ids, normalized, language = text_features(line.text)
    samples = load_audio(line.audio_path, sample_rate_hz=SAMPLE_RATE_HZ).samples.astype(np.float32)
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak == 0:
        raise VoxmithError(f"Training line '{line.audio_path}' is silent.")
    if peak > TRAINING_MAX_PEAK:
        raise VoxmithError(f"Training line '{line.audio_path}' peaks at {peak:.2f} (above {TRAINING_MAX_PEAK}), "
                           "which the official recipe refuses; fix its level.")
    mixed = training_audio(samples)
    # Stored as the official wav32k folder stores it: int16 (truncated), read back / 32768.
    wave = (mixed * INT16_SCALE).astype(np.int16)
    wav_16k = resample(mixed * np.float32(TRAINING_INPUT_SCALE), SAMPLE_RATE_HZ, HUBERT_RATE_HZ)
    features = hubert.features(torch.from_numpy(np.ascontiguousarray(wav_16k)).unsqueeze(0)).float()
    if not torch.isfinite(features).all():
        raise VoxmithError(f"HuBERT gave invalid values for '{line.audio_path}'.")
    device = next(sovits.parameters()).device
    codes = sovits.extract_codes(features.to(device))[0].long().reshape(-1).cpu().numpy()
    arrays = {"phone_ids": phone_ids, "text": np.asarray(normalized), "language": np.asarray(language),
              "wave_int16": wave, "hubert": features[0].cpu().numpy().astype(np.float32), "codes": codes}
    if verifier is not None:
        # official 2-get-sv.py: the stored wav32k file, read back, at 16 kHz
        stored = wave.astype(np.float32) / np.float32(INT16_SCALE)
        sv_16k = torch.from_numpy(np.ascontiguousarray(resample(stored, SAMPLE_RATE_HZ, HUBERT_RATE_HZ)))
        embedding = verifier.embed(sv_16k.to(device))[0].float().cpu()
        if not torch.isfinite(embedding).all():
            raise VoxmithError(f"The speaker-verification model gave invalid values for '{line.audio_path}'.")
        arrays["sv"] = embedding.numpy()
    return arrays


def _read(path: Path) -> LineFeatures:
    with np.load(path) as data:
        return LineFeatures(phone_ids=data["phone_ids"].astype(np.int64), text=str(data["text"]),
                            language=str(data["language"]),
                            wave_32k=data["wave_int16"].astype(np.float32) / np.float32(INT16_SCALE),
                            hubert=data["hubert"].astype(np.float32), codes=data["codes"].astype(np.int64),
                            sv=data["sv"].astype(np.float32) if "sv" in data.files else None)


def cache_folder(cache_dir: Path, key_of_models: str) -> Path:
    return Path(cache_dir) / f"gpt-sovits-ft{CACHE_VERSION}" / key_of_models


def load_lines(lines: Sequence[TrainingLine], cache_dir: Path, hubert, sovits, *, verifier=None,
               key_of_models: Optional[str] = None,
               progress: Optional[ProgressCallback] = None) -> List[LineFeatures]:
    """Every line's features, computing (and caching) only those not cached yet; with `verifier`
    (v2Pro/v2ProPlus) each line has its speaker embedding too."""
    folder = cache_folder(cache_dir, key_of_models or models_key(hubert, sovits, verifier))
    stage = "gpt-sovits: preparing the dataset (text, HuBERT, codes" + (", speaker embeddings)" if verifier else ")")
    out = []
    for index, line in enumerate(lines):
        report(progress, stage, index, len(lines))
        path = folder / f"{line_key(line)}.npz"
        if not path.is_file():
            arrays = compute_line(line, hubert, sovits, verifier)
            with atomic_path(path) as tmp:
                np.savez(tmp, **arrays)
        out.append(_read(path))
    report(progress, stage, len(lines), len(lines))
    return out


__all__ = ["CACHE_VERSION", "LineFeatures", "cache_folder", "compute_line", "line_key", "load_lines",
           "models_key", "text_features"]
