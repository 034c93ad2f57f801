"""The features GPT-SoVITS fine-tuning trains on, computed once per dataset line and cached.

The official recipe prepares a dataset in three passes (`GPT_SoVITS/prepare_datasets/`), and so do
we, per `TrainingLine` (a clip and its transcript):
1. text (`1-get-text.py`): phone ids and normalised text of the transcript (`frontend.read_text`,
   after the official replacements '%' -> '-' and '￥' -> ','), language from the text's script
   (`resolve_language(..., "auto")`). A Chinese transcript (one with Chinese characters; Latin words
   in it are read by the English front end, as at synthesis) also gets its BERT features
   (`1-get-text.py`'s 3-bert folder): the RoBERTa features of its Chinese runs, one 1024-d vector per
   character repeated over the character's phones, zeros over other runs (`frontend.bert_features`),
   (1024, phones); its polyphones are read by G2PW when the model is there (the official v2 recipe
   always uses it), else by pypinyin. Lines in other languages have none (the GPT stage gives them
   zeros, as the official loader does for a line without a 3-bert file). Deviation: the official
   recipe reads a line tagged "zh" with the Chinese front end alone, which drops Latin words;
   here mixed lines are read as synthesis reads them;
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
`models_key`). A Chinese line's file name also carries `ChineseReader.key` (the RoBERTa weights, G2PW
or pypinyin, the Chinese front end's version and its dictionaries' package versions), so a change of
any of them recomputes the Chinese lines only. Each file is written atomically, so an
interrupted preparation resumes with the lines already done and a half-written file never exists.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch

from voxmith.audio import load_audio
from voxmith.audio.dsp import resample
from voxmith.engines.base import TrainingLine
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path
from voxmith.progress import ProgressCallback, report

from .chinese_bert import ChineseBert
from .frontend import TextReading, bert_features, read_text, resolve_language
from .g2pw import G2PW
from .hubert import TRAINING_INPUT_SCALE
from .spectrogram import SAMPLE_RATE_HZ, TRAINING_MAX_PEAK, training_audio

HUBERT_RATE_HZ = 16000
# Bump when cached features would come out differently.
CACHE_VERSION = "1"
INT16_SCALE = 32768.0
# Bump when the Chinese front end (chinese.py, chinese_normalize.py, tone_sandhi.py) reads differently.
CHINESE_FRONT_END_VERSION = "1"
CHINESE_PACKAGES = ("jieba", "jieba_fast", "pypinyin", "opencc")


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
    bert: Optional[np.ndarray] = None  # (1024, phones) float32: Chinese lines only (others: zeros)

    @property
    def duration_s(self) -> float:
        return self.wave_32k.shape[0] / SAMPLE_RATE_HZ


@dataclass
class ChineseReader:
    """What reads a Chinese transcript for training: the RoBERTa of its BERT features and the G2PW
    model of its polyphones (None: pypinyin's readings)."""

    bert: ChineseBert
    g2pw: Optional[G2PW] = None

    def key(self) -> str:
        """A short fingerprint of everything that makes a Chinese line's phones and BERT features."""
        h = hashlib.sha1(f"zh{CHINESE_FRONT_END_VERSION}".encode())
        _fingerprint(h, self.bert.model)
        h.update(str(len(self.bert.model.encoder.layer)).encode())
        h.update(self.bert.tokenizer.to_str().encode())
        if self.g2pw is None:
            h.update(b"pypinyin")
        else:  # the model's tables and tokenizer (its ONNX weights are fixed per release)
            h.update("g2pw\n".join([*self.g2pw.labels, *sorted(self.g2pw.char_labels)]).encode())
            h.update(self.g2pw.tokenizer.to_str().encode())
        for package in CHINESE_PACKAGES:
            try:
                h.update(f"{package}={importlib.metadata.version(package)}".encode())
            except importlib.metadata.PackageNotFoundError:
                h.update(f"{package}=none".encode())
        return h.hexdigest()[:12]


def line_key(line: TrainingLine, reader_key: str = "") -> str:
    """The cache name of a line: its audio and transcript, and for a Chinese line `reader_key`."""
    try:
        audio = Path(line.audio_path).read_bytes()
    except OSError as err:
        raise VoxmithError(f"Training line audio '{line.audio_path}' cannot be read: {err}.") from None
    h = hashlib.sha1()
    for part in (audio, line.text.strip().encode("utf-8")):
        h.update(hashlib.sha1(part).digest())
    return h.hexdigest()[:20] + (f"-zh{reader_key}" if reader_key else "")


def models_key(hubert, sovits, verifier=None) -> str:
    """A short fingerprint of the weights that make HuBERT features, codes and speaker embeddings (a
    few values of each model's parameters and their shapes): stock models share it, other weights
    get their own cache."""
    h = hashlib.sha1()
    models = (hubert.model, sovits.ssl_proj, sovits.quantizer) + ((verifier.model,) if verifier is not None else ())
    for model in models:
        _fingerprint(h, model)
    return h.hexdigest()[:16]


def _fingerprint(h, model: torch.nn.Module) -> None:
    for name, p in model.state_dict().items():
        flat = p.detach().reshape(-1)
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(flat[:16].float().cpu().numpy().tobytes())
        h.update(np.float64(flat.float().sum().item()).tobytes())


def _cleaned(text: str) -> str:
    return text.strip().replace("%", "-").replace("\uffe5", ",")


def is_chinese(text: str) -> bool:
    """Whether a transcript is read as Chinese (and so needs a `ChineseReader`)."""
    return resolve_language(_cleaned(text), "auto") == "zh"


def read_transcript(text: str, reader: Optional[ChineseReader] = None) -> TextReading:
    """The reading of a transcript, as the official 1-get-text.py (see the module docstring)."""
    cleaned = _cleaned(text)
    language = resolve_language(cleaned, "auto")
    if language == "zh" and reader is None:
        raise VoxmithError(f"The Chinese transcript '{text[:40]}' needs the Chinese BERT model for fine-tuning.")
    return read_text(cleaned, language, reader.g2pw if language == "zh" else None)


def text_features(text: str, reader: Optional[ChineseReader] = None):
    """(phone ids, normalised text, language, BERT features or None) of a transcript."""
    reading = read_transcript(text, reader)
    language = resolve_language(_cleaned(text), "auto")
    bert = bert_features(reading.runs, reader.bert) if reading.needs_bert else None
    if bert is not None and bert.shape[1] != len(reading.phone_ids):
        raise VoxmithError(f"The BERT features of '{text[:40]}' do not cover its phones.")
    return np.asarray(reading.phone_ids, dtype=np.int64), reading.normalized, language, bert


@torch.no_grad()
def compute_line(line: TrainingLine, hubert, sovits, verifier=None, reader: Optional[ChineseReader] = None) -> dict:
    """The arrays of one line (see the module docstring); VoxmithError for a line the recipe refuses.
    `verifier` (a `SpeakerVerifier`, v2Pro/v2ProPlus) adds the speaker embedding "sv"; `reader`
    reads a Chinese transcript and adds its BERT features "bert"."""
    phone_ids, normalized, language, bert = text_features(line.text, reader)
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
    if bert is not None:
        arrays["bert"] = bert.astype(np.float32)
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
                            sv=data["sv"].astype(np.float32) if "sv" in data.files else None,
                            bert=data["bert"].astype(np.float32) if "bert" in data.files else None)


def cache_folder(cache_dir: Path, key_of_models: str) -> Path:
    return Path(cache_dir) / f"gpt-sovits-ft{CACHE_VERSION}" / key_of_models


def load_lines(lines: Sequence[TrainingLine], cache_dir: Path, hubert, sovits, *, verifier=None,
               chinese: Optional[Callable[[], ChineseReader]] = None, key_of_models: Optional[str] = None,
               progress: Optional[ProgressCallback] = None) -> List[LineFeatures]:
    """Every line's features, computing (and caching) only those not cached yet; with `verifier`
    (v2Pro/v2ProPlus) each line has its speaker embedding too. `chinese` gives the `ChineseReader`
    (called once, only when a transcript is Chinese: it may load models or refuse with words); a
    Chinese transcript without it is refused."""
    folder = cache_folder(cache_dir, key_of_models or models_key(hubert, sovits, verifier))
    reader: Optional[ChineseReader] = None
    if any(is_chinese(line.text) for line in lines):
        if chinese is None:
            raise VoxmithError("This dataset has Chinese transcripts, which need the Chinese BERT model.")
        reader = chinese()
    reader_key = reader.key() if reader is not None else ""
    stage = "gpt-sovits: preparing the dataset (text" + (", BERT" if reader else "") + ", HuBERT, codes" + \
        (", speaker embeddings)" if verifier else ")")
    out = []
    for index, line in enumerate(lines):
        report(progress, stage, index, len(lines), unit="line")
        path = folder / f"{line_key(line, reader_key if is_chinese(line.text) else '')}.npz"
        if not path.is_file():
            arrays = compute_line(line, hubert, sovits, verifier, reader)
            with atomic_path(path) as tmp:
                np.savez(tmp, **arrays)
        out.append(_read(path))
    report(progress, stage, len(lines), len(lines), unit="line")
    return out


__all__ = ["CACHE_VERSION", "ChineseReader", "LineFeatures", "cache_folder", "compute_line", "is_chinese",
           "line_key", "load_lines", "models_key", "read_transcript", "text_features"]
