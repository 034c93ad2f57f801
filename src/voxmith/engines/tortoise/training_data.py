"""Fine-tuning data for TorToiSe's autoregressive model: lines -> codes, conditioning crops, batches.

What DLAS / ai-voice-cloning (`paired_voice_audio` dataset, `torch_mel_spectrogram` and
`discrete_token` injectors) feed the model, reproduced:

* audio at 22.05 kHz; lines over `MAX_WAV_SAMPLES` (~11.6 s), under 0.6 s, or with more than
  `MAX_TEXT_TOKENS` text tokens are left out (DLAS silently swaps them for other lines; we report them);
* text: TorToiSe's BPE ids of the english-cleaned transcript, padded with 0 (the stop token);
* target codes: the DVAE's codes of the normalised log mel of the clip *zero-padded* (DLAS pads every
  clip to `MAX_WAV_SAMPLES` before the mel). Codes are kept up to index `samples // 1024` (the one
  code past the end that the model is also taught), computed once per clip and cached on disk;
* conditioning: `CONDITIONING_CANDIDATES` crops of `CONDITIONING_SAMPLES` samples (random start,
  zero-padded when shorter), each turned into the AR conditioning mel; the model averages them.

One deliberate difference: DLAS crops the conditioning from the target clip itself unless a
`similarities.pth` lists related clips (ai-voice-cloning ships none), so the model can copy from its
own target. Here the crops come from *other* lines of the dataset (the clip itself only when it is
the only one), the way the model is conditioned at synthesis time. Choices are seeded by
(seed, epoch), never by the global RNG.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from voxmith.audio import load_audio
from voxmith.engines.base import TrainingLine
from voxmith.errors import AudioError, VoxmithError
from voxmith.fsutil import atomic_write_bytes
from voxmith.progress import ProgressCallback, report

from .audio import INPUT_SAMPLE_RATE, ar_conditioning_mel, clip_22k
from .dvae import DiscreteVAE

MAX_WAV_SAMPLES = 255995  # ai-voice-cloning's max_wav_length (~11.6 s at 22.05 kHz)
MIN_WAV_SAMPLES = int(0.6 * INPUT_SAMPLE_RATE)  # DLAS drops shorter clips as useless
MAX_TEXT_TOKENS = 200  # ai-voice-cloning's max_text_length
CONDITIONING_SAMPLES = 44000  # ai-voice-cloning's conditioning_length (~2 s)
CONDITIONING_CANDIDATES = 2  # ai-voice-cloning's num_conditioning_candidates
SAMPLES_PER_CODE = 1024
# Zeros after each clip before its mel. The DVAE's receptive field spans about +-27 mel frames
# (+-7.4k samples) around a code, so with this margin the kept codes equal those of the clip padded
# to MAX_WAV_SAMPLES, as DLAS computes them (a test checks this).
CODE_MARGIN_SAMPLES = 16384
CACHE_FORMAT = 1  # bump when the cached codes' meaning changes
STOP_MEL_TOKEN = 8193
UNK_TOKEN = 1


@dataclass
class PreparedLine:
    """One usable line: token ids, cached target codes and the audio the conditioning is cut from."""

    line: TrainingLine
    text_tokens: torch.Tensor  # (n,) long, no stop token
    codes: torch.Tensor  # (samples // 1024 + 1,) long
    wave: torch.Tensor  # (samples,) float32 at 22.05 kHz

    @property
    def samples(self) -> int:
        return int(self.wave.shape[-1])


@dataclass
class TortoiseBatch:
    """One padded batch, in the layout of DLAS's collated `paired_voice_audio` batch."""

    cond_mels: torch.Tensor  # (B, candidates, 80, frames) AR conditioning mels
    text: torch.Tensor  # (B, T) long, 0-padded
    text_lengths: torch.Tensor  # (B,)
    codes: torch.Tensor  # (B, M) long, stop-padded
    wav_lengths: torch.Tensor  # (B,) samples at 22.05 kHz

    def to(self, device: torch.device) -> "TortoiseBatch":
        return TortoiseBatch(*(t.to(device) for t in (self.cond_mels, self.text, self.text_lengths, self.codes,
                                                      self.wav_lengths)))

    def __len__(self) -> int:
        return int(self.text.shape[0])


# --------------------------------------------------------------------------------------- lines


def load_wave_22k(path: Path) -> torch.Tensor:
    """A line's audio as the official loader gives it: mono, 22.05 kHz (torchaudio-style sinc
    resampling), clipped to [-1, 1]; shape (samples,)."""
    return clip_22k(load_audio(path)).reshape(-1)


def codes_for_wave(dvae: DiscreteVAE, wave: torch.Tensor) -> torch.Tensor:
    """The DVAE codes the model learns for a clip: (samples // 1024 + 1,) long, on the CPU."""
    device = dvae.codebook.embed.device
    padded = F.pad(wave.to(device).float(), (0, CODE_MARGIN_SAMPLES))
    codes = dvae.get_codebook_indices(ar_conditioning_mel(padded[None]))[0]
    return codes[:wave.shape[-1] // SAMPLES_PER_CODE + 1].cpu()


class CodeCache:
    """Codes per clip under `folder`, one file per audio content hash; written atomically."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, audio_hash: str) -> Path:
        return self.folder / f"{audio_hash}.pt"

    def load(self, audio_hash: str) -> Optional[torch.Tensor]:
        path = self._path(audio_hash)
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True)["codes"]
        except Exception:  # a damaged or foreign file: recompute it
            return None

    def save(self, audio_hash: str, codes: torch.Tensor) -> None:
        buffer = io.BytesIO()
        torch.save({"codes": codes.clone(), "format": CACHE_FORMAT}, buffer)
        atomic_write_bytes(self._path(audio_hash), buffer.getvalue())


def prepare_lines(lines: Sequence[TrainingLine], *, encode_text: Callable[[str], List[int]],
                  dvae: Callable[[], DiscreteVAE], cache: CodeCache, what: str,
                  progress: Optional[ProgressCallback] = None) -> Tuple[List[PreparedLine], List[str]]:
    """Usable lines and, in words, why the others were left out. `dvae()` is called (the model
    built or loaded) only when some clip's codes are not cached yet."""
    prepared: List[PreparedLine] = []
    skipped: List[str] = []
    stage = f"tortoise: preparing {what} lines"
    for i, line in enumerate(lines):
        report(progress, stage, i, len(lines), detail=Path(line.audio_path).name, unit="line")
        try:
            raw = Path(line.audio_path).read_bytes()
            wave = load_wave_22k(Path(line.audio_path))
        except (OSError, AudioError) as err:
            skipped.append(f"{Path(line.audio_path).name}: cannot read the audio ({err})")
            continue
        tokens = encode_text(line.text) if line.text and line.text.strip() else []
        reason = _unusable(wave.shape[-1], tokens)
        if reason:
            skipped.append(f"{Path(line.audio_path).name}: {reason}")
            continue
        audio_hash = hashlib.sha256(raw).hexdigest()[:32]
        codes = cache.load(audio_hash)
        if codes is None or codes.shape[-1] != wave.shape[-1] // SAMPLES_PER_CODE + 1:
            codes = codes_for_wave(dvae(), wave)
            cache.save(audio_hash, codes)
        prepared.append(PreparedLine(line, torch.tensor(tokens, dtype=torch.long), codes, wave))
    report(progress, stage, len(lines), len(lines), unit="line",
           detail=f"{len(prepared)} usable" + (f", {len(skipped)} left out" if skipped else ""))
    return prepared, skipped


def _unusable(samples: int, tokens: Sequence[int]) -> str:
    if not tokens:
        return "the transcript is empty"
    if samples < MIN_WAV_SAMPLES:
        return f"shorter than {MIN_WAV_SAMPLES / INPUT_SAMPLE_RATE:.1f} s"
    if samples > MAX_WAV_SAMPLES:
        return f"longer than {MAX_WAV_SAMPLES / INPUT_SAMPLE_RATE:.1f} s (split it into shorter lines)"
    if len(tokens) > MAX_TEXT_TOKENS:
        return f"the transcript is {len(tokens)} tokens long; at most {MAX_TEXT_TOKENS} fit"
    if UNK_TOKEN in tokens:
        return "the transcript has characters TorToiSe cannot spell (digits or symbols left after cleaning)"
    return ""


# --------------------------------------------------------------------------------------- batches

# A planned row: (line index, ((conditioning line index, crop start), ...)).
Row = Tuple[int, Tuple[Tuple[int, int], ...]]


def plan_rows(lines: Sequence[PreparedLine], order: Sequence[int], rng: random.Random) -> List[Row]:
    """Conditioning crops for each line in `order`, drawn from the other lines."""
    rows = []
    for index in order:
        others = [j for j in range(len(lines)) if j != index] or [index]
        crops = []
        for _ in range(CONDITIONING_CANDIDATES):
            source = rng.choice(others)  # with replacement, as DLAS samples its candidates
            gap = lines[source].samples - CONDITIONING_SAMPLES
            crops.append((source, rng.randint(0, gap) if gap > 0 else 0))
        rows.append((index, tuple(crops)))
    return rows


def collate(lines: Sequence[PreparedLine], rows: Sequence[Row]) -> TortoiseBatch:
    """Pad a group of planned rows into one batch (text with 0, codes with the stop token)."""
    crops = []
    for _, picks in rows:
        for source, start in picks:
            clip = lines[source].wave[start:start + CONDITIONING_SAMPLES]
            crops.append(F.pad(clip, (0, CONDITIONING_SAMPLES - clip.shape[-1])))
    mels = ar_conditioning_mel(torch.stack(crops))
    chosen = [lines[index] for index, _ in rows]
    text = _pad([p.text_tokens for p in chosen], 0)
    codes = _pad([p.codes for p in chosen], STOP_MEL_TOKEN)
    return TortoiseBatch(cond_mels=mels.view(len(rows), CONDITIONING_CANDIDATES, *mels.shape[1:]), text=text,
                         text_lengths=torch.tensor([p.text_tokens.shape[0] for p in chosen]), codes=codes,
                         wav_lengths=torch.tensor([p.samples for p in chosen]))


def _pad(rows: Sequence[torch.Tensor], value: int) -> torch.Tensor:
    width = max(r.shape[0] for r in rows)
    return torch.stack([F.pad(r, (0, width - r.shape[0]), value=value) for r in rows])


class Batches(Sequence):
    """An epoch's batches, built when read: only the plan (line and crop choices) is held."""

    def __init__(self, lines: Sequence[PreparedLine], rows: Sequence[Row], batch_size: int, drop_last: bool):
        self.lines = lines
        stop = len(rows) - len(rows) % batch_size if drop_last else len(rows)
        self.groups = [rows[i:i + batch_size] for i in range(0, stop, batch_size)]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return collate(self.lines, self.groups[index])


def epoch_batches(lines: Sequence[PreparedLine], batch_size: int, seed: int, epoch: int) -> Batches:
    """Training batches of `epoch`: lines shuffled, last partial batch dropped (as DLAS's loader)."""
    rng = random.Random(f"tortoise-train:{seed}:{epoch}")
    order = list(range(len(lines)))
    rng.shuffle(order)
    return Batches(lines, plan_rows(lines, order, rng), batch_size, drop_last=True)


def validation_batches(lines: Sequence[PreparedLine], batch_size: int, seed: int) -> Batches:
    """Validation batches: every line in order, the same crops every time."""
    rng = random.Random(f"tortoise-validation:{seed}")
    return Batches(lines, plan_rows(lines, range(len(lines)), rng), batch_size, drop_last=False)


def check_enough(prepared: Sequence[PreparedLine], skipped: Sequence[str], batch_size: int) -> None:
    if len(prepared) >= batch_size:
        return
    why = ("\n  - " + "\n  - ".join(skipped[:10])) if skipped else ""
    raise VoxmithError(f"Only {len(prepared)} training line(s) are usable, fewer than the batch size "
                       f"{batch_size}; add lines or lower the batch size.{why}")


__all__ = ["PreparedLine", "TortoiseBatch", "CodeCache", "prepare_lines", "codes_for_wave",
           "epoch_batches", "validation_batches", "check_enough", "MAX_WAV_SAMPLES", "CONDITIONING_SAMPLES"]
