"""The SV2TTS model sizes and signal constants, as the official Real-Time-Voice-Cloning
checkpoints were trained with them (its `encoder/params_*.py`, `synthesizer/hparams.py`,
`vocoder/hparams.py`). Units are in the names or comments.

Each model has a frozen config dataclass with the official sizes as defaults and a `tiny()` for
tests; the signal constants (sample rate, STFT, mel range) are shared by the synthesizer and the
vocoder, which were trained on the same mels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

SAMPLE_RATE_HZ = 16000  # encoder, synthesizer and vocoder all work at 16 kHz


@dataclass(frozen=True)
class EncoderConfig:
    """GE2E speaker encoder: 3-layer LSTM over 40-band mel frames, a linear layer, ReLU, L2 norm."""

    mel_bands: int = 40
    hidden_size: int = 256
    embedding_size: int = 256
    num_layers: int = 3

    @classmethod
    def tiny(cls) -> "EncoderConfig":
        return cls(mel_bands=40, hidden_size=16, embedding_size=12, num_layers=2)


@dataclass(frozen=True)
class EncoderAudio:
    """How the encoder's input is made (official params_data.py)."""

    window_ms: int = 25
    hop_ms: int = 10
    partial_frames: int = 160  # 1.6 s windows at inference
    partial_overlap: float = 0.5  # consecutive windows share half their frames
    min_pad_coverage: float = 0.75  # a last, short window is kept if it covers this much
    vad_window_ms: int = 30
    vad_moving_average_width: int = 8  # VAD windows averaged when smoothing
    vad_max_silence_windows: int = 6  # pauses up to this many VAD windows are kept
    target_dbfs: float = -30.0  # quiet clips are raised to this loudness (never lowered)

    @property
    def window_samples(self) -> int:
        return SAMPLE_RATE_HZ * self.window_ms // 1000

    @property
    def hop_samples(self) -> int:
        return SAMPLE_RATE_HZ * self.hop_ms // 1000


@dataclass(frozen=True)
class SignalConfig:
    """The synthesizer's mel spectrograms, which the vocoder inverts (official synthesizer/hparams.py)."""

    n_fft: int = 800
    hop_samples: int = 200  # 12.5 ms
    window_samples: int = 800  # 50 ms
    mel_bands: int = 80
    fmin_hz: float = 55.0
    fmax_hz: float = 7600.0
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0  # mels are scaled to [-4, 4]
    preemphasis: float = 0.97
    stop_threshold: float = -3.4  # trailing frames whose every band is below this are silence
    griffin_lim_power: float = 1.5
    griffin_lim_iters: int = 60


@dataclass(frozen=True)
class TacotronConfig:
    """The synthesizer (Tacotron with the speaker embedding concatenated to every encoder step)."""

    num_chars: int = 66  # len(text.SYMBOLS)
    embed_dims: int = 512
    encoder_dims: int = 256
    decoder_dims: int = 128
    postnet_dims: int = 512
    encoder_K: int = 5
    lstm_dims: int = 1024
    postnet_K: int = 5
    num_highways: int = 4
    dropout: float = 0.5
    n_mels: int = 80
    speaker_embedding_size: int = 256
    stop_threshold: float = -3.4
    reduction_factor: int = 2  # frames per decoder step (the schedule's r, stored in the checkpoint)
    max_decoder_steps: int = 2000  # frames, as the official generate()

    @classmethod
    def tiny(cls) -> "TacotronConfig":
        return cls(embed_dims=16, encoder_dims=12, decoder_dims=10, postnet_dims=14, encoder_K=3,
                   lstm_dims=20, postnet_K=3, num_highways=2, n_mels=8, speaker_embedding_size=6,
                   max_decoder_steps=60)


@dataclass(frozen=True)
class WaveRNNConfig:
    """The vocoder (fatchord's WaveRNN, RAW mode: a softmax over 2**bits mu-law levels)."""

    rnn_dims: int = 512
    fc_dims: int = 512
    bits: int = 9
    pad: int = 2  # mel frames of context on each side for the residual network
    upsample_factors: Tuple[int, ...] = (5, 5, 8)  # product = hop_samples
    feat_dims: int = 80
    compute_dims: int = 128
    res_out_dims: int = 128
    res_blocks: int = 10
    hop_samples: int = 200
    # Batched generation (official infer_waveform defaults): the signal is cut into folds of
    # `target` samples that run as one batch, each with `overlap` samples of warm-up/crossfade.
    target_samples: int = 8000
    overlap_samples: int = 800
    mel_max_abs_value: float = 4.0  # synthesizer mels are divided by this before the vocoder
    preemphasis: float = 0.97

    @property
    def n_classes(self) -> int:
        return 2 ** self.bits

    @classmethod
    def tiny(cls) -> "WaveRNNConfig":
        return cls(rnn_dims=16, fc_dims=12, bits=9, pad=2, upsample_factors=(2, 3), feat_dims=8,
                   compute_dims=6, res_out_dims=8, res_blocks=2, hop_samples=6,
                   target_samples=40, overlap_samples=12)
