"""SV2TTS training data: each dataset line as the official synthesizer preprocessing makes it,
computed once per line and cached in the dataset's training cache.

Per line (official `synthesizer/preprocess.py`, `process_utterance` without alignments, and
`create_embeddings`): the clip at 16 kHz, its peak scaled to `rescaling_max`, long pauses removed
with the encoder's VAD (no levelling); lines with less than `utterance_min_duration` of speech or
more than `max_mel_frames` frames are left out, with the reason. Then the 80-band mel spectrogram
(`synthesizer_mel`: pre-emphasis, STFT, Slaney mel filters, dB, scaled to [-4, 4], as official
`audio.melspectrogram`) and the speaker embedding of that utterance alone (levelled and trimmed
again, then embedded from partial windows, as official `embed_utterance`). The trimmed waveform is
kept too: the vocoder trains on it.

The cache holds one file per line, named by a hash of the audio's bytes, the settings above and
the speaker encoder's identity, so an interrupted preparation resumes where it stopped and a
changed setting or encoder recomputes; a damaged file counts as missing.

Not here: batching and the models' losses (synthesizer_training.py, vocoder_training.py).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from voxmith.audio import load_audio
from voxmith.engines.base import TrainingLine
from voxmith.errors import AudioError
from voxmith.fsutil import atomic_write_bytes
from voxmith.progress import ProgressCallback, report

from .encoder_audio import normalize_volume, trim_long_silences
from .hparams import SAMPLE_RATE_HZ, EncoderAudio, SignalConfig
from .speaker_encoder import SpeakerEncoder, embed_utterance
from .text import text_to_ids
from .training_settings import TrainingHparams

CACHE_FORMAT = 1  # bump when what a cached line holds changes


@dataclass(frozen=True)
class PreparedLine:
    name: str  # the clip's file name, for messages
    key: str  # its cache key (audio content, preprocessing settings, encoder)
    text: str
    chars: np.ndarray  # int64 character ids (official english_cleaners)
    mel: np.ndarray  # (mel_bands, frames) float32 in [-4, 4]
    embedding: np.ndarray  # (embedding_size,) float32, unit length
    wav: np.ndarray  # float32 at 16 kHz, peak-scaled and trimmed: what the mel was computed from

    @property
    def frames(self) -> int:
        return int(self.mel.shape[1])


@lru_cache(maxsize=4)
def _mel_basis(signal: SignalConfig) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=signal.n_fft, n_mels=signal.mel_bands,
                               fmin=signal.fmin_hz, fmax=signal.fmax_hz)


def synthesizer_mel(wav: np.ndarray, signal: SignalConfig = SignalConfig()) -> np.ndarray:
    """(mel_bands, frames) float32 mel spectrogram of a 16 kHz waveform, as the synthesizer was
    trained on (official `synthesizer/audio.py` melspectrogram; STFT frames zero-padded at the ends,
    the default of the librosa it pins)."""
    import librosa
    from scipy.signal import lfilter

    emphasized = lfilter([1, -signal.preemphasis], [1], np.asarray(wav, dtype=np.float64))
    spectrum = np.abs(librosa.stft(y=emphasized, n_fft=signal.n_fft, hop_length=signal.hop_samples,
                                   win_length=signal.window_samples, pad_mode="constant"))
    min_amplitude = np.exp(signal.min_level_db / 20 * np.log(10))
    db = 20 * np.log10(np.maximum(min_amplitude, _mel_basis(signal) @ spectrum)) - signal.ref_level_db
    m = signal.max_abs_value
    return np.clip(2 * m * (db - signal.min_level_db) / -signal.min_level_db - m, -m, m).astype(np.float32)


def utterance_wav(wav_16k: np.ndarray, hparams: TrainingHparams) -> np.ndarray:
    """The waveform the official preprocessing keeps of a 16 kHz clip: peak-scaled, then trimmed."""
    wav = np.asarray(wav_16k, dtype=np.float32)
    if hparams.rescale:
        peak = float(np.max(np.abs(wav))) if len(wav) else 0.0
        wav = wav / peak * hparams.rescaling_max if peak > 0 else wav
    if hparams.trim_silence:
        wav = trim_long_silences(wav)
    return wav


def utterance_embedding(encoder: SpeakerEncoder, wav: np.ndarray) -> np.ndarray:
    """The speaker embedding of one kept utterance (official `create_embeddings`: levelled, trimmed
    again, embedded)."""
    levelled = normalize_volume(np.asarray(wav, dtype=np.float64), EncoderAudio().target_dbfs).astype(np.float32)
    return embed_utterance(encoder, trim_long_silences(levelled))


def line_cache_key(audio_bytes: bytes, hparams: TrainingHparams, signal: SignalConfig, encoder_id: str) -> str:
    settings = {"format": CACHE_FORMAT, "rescale": hparams.rescale, "rescaling_max": hparams.rescaling_max,
                "trim_silence": hparams.trim_silence, "signal": repr(signal), "encoder": encoder_id}
    digest = hashlib.sha256(audio_bytes)
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:32]


class LineCache:
    """Prepared lines under `folder`, one .npz per line key; written atomically."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def load(self, key: str) -> Optional[dict]:
        path = self.folder / f"{key}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in ("mel", "embedding", "wav")}
        except Exception:  # damaged or foreign: prepared again
            return None

    def save(self, key: str, mel: np.ndarray, embedding: np.ndarray, wav: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, mel=mel, embedding=embedding, wav=wav)
        atomic_write_bytes(self.folder / f"{key}.npz", buffer.getvalue())


def prepare_lines(lines: Sequence[TrainingLine], *, hparams: TrainingHparams, signal: SignalConfig,
                  encoder: Callable[[], SpeakerEncoder], encoder_id: str, cache: LineCache, what: str,
                  progress: Optional[ProgressCallback] = None) -> Tuple[List[PreparedLine], List[str]]:
    """Usable lines and, in words, why the others were left out. `encoder()` gives the speaker
    encoder (called only when a line is not cached yet)."""
    prepared: List[PreparedLine] = []
    skipped: List[str] = []
    stage = f"sv2tts: preparing {what} lines"
    for i, line in enumerate(lines):
        name = Path(line.audio_path).name
        report(progress, stage, i, len(lines), detail=name, unit="line")
        chars = np.asarray(text_to_ids(line.text.strip()) if line.text else [], dtype=np.int64)
        if len(chars) < 2:  # text_to_ids always ends with the end-of-sequence id
            skipped.append(f"{name}: no transcript the synthesizer can read")
            continue
        try:
            raw = Path(line.audio_path).read_bytes()
            key = line_cache_key(raw, hparams, signal, encoder_id)
            entry = cache.load(key)
            if entry is None:
                wav = utterance_wav(load_audio(line.audio_path, sample_rate_hz=SAMPLE_RATE_HZ).samples, hparams)
                mel = synthesizer_mel(wav, signal)
                embedding = utterance_embedding(encoder(), wav) if len(wav) >= SAMPLE_RATE_HZ // 4 else \
                    np.full(1, np.nan, np.float32)
                entry = {"mel": mel, "embedding": embedding, "wav": wav}
                cache.save(key, mel, embedding, wav)
        except (OSError, AudioError) as err:
            skipped.append(f"{name}: cannot read the audio ({err})")
            continue
        wav, mel, embedding = entry["wav"], entry["mel"], entry["embedding"]
        if len(wav) < hparams.utterance_min_duration * SAMPLE_RATE_HZ:
            skipped.append(f"{name}: {len(wav) / SAMPLE_RATE_HZ:.2f} s of speech, less than "
                           f"utterance_min_duration ({hparams.utterance_min_duration:g} s)")
            continue
        if mel.shape[1] > hparams.max_mel_frames:
            skipped.append(f"{name}: {mel.shape[1]} mel frames, more than max_mel_frames ({hparams.max_mel_frames})")
            continue
        if not np.isfinite(embedding).all():
            skipped.append(f"{name}: the speaker encoder could not embed it")
            continue
        prepared.append(PreparedLine(name, key, line.text, chars, mel, embedding.astype(np.float32), wav))
    report(progress, stage, len(lines), len(lines), unit="line")
    return prepared, skipped


__all__ = ["LineCache", "PreparedLine", "line_cache_key", "prepare_lines", "synthesizer_mel", "utterance_embedding",
           "utterance_wav"]
