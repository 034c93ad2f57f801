"""The speaker encoder's training data: speakers' utterances as mel frames, and GE2E batches of
speakers x utterances cut from them (official `encoder/preprocess.py` and `encoder/data_objects`).

Each audio file is one utterance, preprocessed as the official encoder preprocessing does: read
mono, resampled to 16 kHz, quiet clips raised to -30 dBFS, long pauses removed by the VAD, turned
into 40-band mel frames; an utterance shorter than one partial (160 frames, 1.6 s) after trimming
is left out. The frames are cached per file content (`FrameCache`), so a resumed run reads them back.

A batch holds `speakers` speakers x `utterances` utterances, one random 160-frame window of each
(a start drawn from [0, frames - 160), as officially; 0 when the utterance is exactly 160 frames).
Speakers and utterances come from random cyclers (every item once per cycle, in a new random order
each cycle), as officially, with one change: a batch never holds the same speaker, or the same
utterance of a speaker, twice (the official cycler may repeat one across a reshuffle, which GE2E
would count as two speakers). Every draw comes from a generator seeded by (seed, epoch), so an
epoch's batches are the same in every process and after a resume.

Not here: the model, its loss and the training loop (`encoder_training.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from voxmith.audio import load_audio
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_path

from .encoder_audio import mel_frames, preprocess_wav
from .hparams import EncoderAudio

FRAMES_VERSION = "1"  # bump when the preprocessing changes: cached frames are then recomputed
MIN_SPEAKERS = 2  # GE2E compares each utterance with the other speakers' centroids
MIN_UTTERANCES = 2  # ...and with its own speaker's centroid computed without it


@dataclass(frozen=True)
class SpeakerSource:
    """One speaker's audio files (a workspace voice's clips, or a dataset's segments)."""

    name: str
    files: Tuple[Path, ...]


@dataclass(frozen=True)
class Speaker:
    """A speaker's usable utterances: (frames, mel_bands) float32 arrays of at least one partial."""

    name: str
    utterances: Tuple[np.ndarray, ...]
    skipped: int = 0  # files left out: too short after trimming (or unreadable)


def utterance_frames(path: Path, audio: EncoderAudio = EncoderAudio(), mel_bands: int = 40) -> np.ndarray:
    """The mel frames of one audio file, preprocessed as the official encoder training data."""
    clip = load_audio(path)
    wav = preprocess_wav(clip.samples, clip.sample_rate_hz, audio)
    if len(wav) == 0:
        return np.zeros((0, mel_bands), np.float32)
    return mel_frames(wav, audio, mel_bands)


class FrameCache:
    """Mel frames per file content in `folder` (<sha256 of the file and the settings>.npy).

    A damaged entry is a miss; entries are written atomically, so two runs may share the folder.
    """

    def __init__(self, folder: Optional[Path], audio: EncoderAudio = EncoderAudio(), mel_bands: int = 40):
        self.folder = Path(folder) if folder is not None else None
        self.audio, self.mel_bands = audio, mel_bands

    def key(self, path: Path) -> str:
        digest = hashlib.sha256(f"{FRAMES_VERSION}:{self.audio}:{self.mel_bands}:".encode())
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def frames(self, path: Path) -> np.ndarray:
        if self.folder is None:
            return utterance_frames(path, self.audio, self.mel_bands)
        entry = self.folder / f"{self.key(path)}.npy"
        try:
            frames = np.load(entry, allow_pickle=False)
            if frames.ndim == 2 and frames.shape[1] == self.mel_bands and frames.dtype == np.float32:
                return frames
        except (OSError, ValueError, EOFError):
            pass
        frames = utterance_frames(path, self.audio, self.mel_bands)
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(entry, suffix=".npy") as tmp:
            np.save(tmp, frames)
        return frames


def load_speakers(sources: Sequence[SpeakerSource], cache: FrameCache, partial_frames: int = 160,
                  progress: Optional[Callable[[int, int], None]] = None) -> List[Speaker]:
    """Every source's utterances of at least `partial_frames` frames (official preprocessing)."""
    total = sum(len(s.files) for s in sources)
    done = 0
    speakers = []
    for source in sources:
        kept, skipped = [], 0
        for path in source.files:
            if progress is not None:
                progress(done, total)
            done += 1
            try:
                frames = cache.frames(Path(path))
            except (VoxmithError, OSError):  # an unreadable or vanished clip: left out, counted
                skipped += 1
                continue
            if len(frames) < partial_frames:
                skipped += 1
            else:
                kept.append(frames)
        speakers.append(Speaker(source.name, tuple(kept), skipped))
    if progress is not None:
        progress(total, total)
    return speakers


@dataclass(frozen=True)
class BatchShape:
    """How many speakers and utterances per speaker a batch holds, scaled to the data."""

    speakers: int
    utterances: int
    note: str = ""  # why it is smaller than asked, in words

    @property
    def size(self) -> int:
        return self.speakers * self.utterances


def batch_shape(speakers: Sequence[Speaker], speakers_per_batch: int, utterances_per_speaker: int) -> BatchShape:
    """The batch the data allows: at most the asked sizes, at most the speakers there are and the
    fewest utterances one of them has. Refuses data GE2E cannot learn from (fewer than 2 speakers
    with at least 2 usable utterances), naming what is missing."""
    usable = [s for s in speakers if len(s.utterances) >= MIN_UTTERANCES]
    if len(usable) < MIN_SPEAKERS:
        counts = ", ".join(f"{s.name}: {len(s.utterances)}" + (f" ({s.skipped} too short)" if s.skipped else "")
                           for s in speakers) or "none"
        raise VoxmithError(
            f"Speaker encoder training needs at least {MIN_SPEAKERS} speakers with at least {MIN_UTTERANCES} "
            f"utterances of 1.6 s or more of speech each (GE2E compares speakers); usable utterances per "
            f"speaker: {counts}. Add clips to the voices or datasets.")
    fewest = min(len(s.utterances) for s in usable)
    shape = BatchShape(min(speakers_per_batch, len(usable)), min(utterances_per_speaker, fewest))
    notes = []
    if shape.speakers < speakers_per_batch:
        notes.append(f"{shape.speakers} speakers per batch (asked {speakers_per_batch}; the data has {len(usable)})")
    if shape.utterances < utterances_per_speaker:
        notes.append(f"{shape.utterances} utterances per speaker (asked {utterances_per_speaker}; "
                     f"the fewest a speaker has is {fewest})")
    return BatchShape(shape.speakers, shape.utterances, "; ".join(notes))


class RandomCycler:
    """Items in random order, each once per cycle (official `RandomCycler`), drawn `count` at a
    time without repeating an item within one draw (needs count <= len(items))."""

    def __init__(self, n_items: int, rng: np.random.Generator):
        self.n, self.rng = n_items, rng
        self.queue: List[int] = []

    def sample(self, count: int) -> List[int]:
        out: List[int] = []
        while len(out) < count:
            if not self.queue:
                self.queue = [int(i) for i in self.rng.permutation(self.n)]
            # Defer an item already drawn this time to the next draw (keeps the cycle guarantee).
            pick = next(i for i, item in enumerate(self.queue) if item not in out)
            out.append(self.queue.pop(pick))
        return out


@dataclass(frozen=True)
class PartialPick:
    speaker: int  # index into the speakers
    utterance: int  # index into that speaker's utterances
    start: int  # first frame of the window


class EncoderBatches(Sequence):
    """One epoch of batches, built on demand: `[i]` -> (speakers * utterances, partial_frames,
    mel_bands) float32 mel windows, speaker-major (speaker 0's utterances first)."""

    def __init__(self, speakers: Sequence[Speaker], shape: BatchShape, steps: int, seed: int, epoch: int,
                 partial_frames: int = 160):
        self.speakers, self.shape, self.partial_frames = list(speakers), shape, partial_frames
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)])
        speaker_cycler = RandomCycler(len(self.speakers), rng)
        utterance_cyclers = [RandomCycler(len(s.utterances), rng) for s in self.speakers]
        self.plans: List[Tuple[PartialPick, ...]] = []
        for _ in range(steps):
            picks = []
            for s in speaker_cycler.sample(shape.speakers):
                for u in utterance_cyclers[s].sample(shape.utterances):
                    picks.append(PartialPick(s, u, self._start(len(self.speakers[s].utterances[u]), rng)))
            self.plans.append(tuple(picks))

    def _start(self, n_frames: int, rng: np.random.Generator) -> int:
        # The official crop: randint(0, n - width), whose upper end is exclusive.
        return 0 if n_frames == self.partial_frames else int(rng.integers(0, n_frames - self.partial_frames))

    def __len__(self) -> int:
        return len(self.plans)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return EncoderBatch(windows(self.speakers, self.plans[index], self.partial_frames), self.shape.speakers,
                            self.shape.utterances, tuple(p.speaker for p in self.plans[index][::self.shape.utterances]))


def windows(speakers: Sequence[Speaker], picks: Sequence[PartialPick], width: int) -> np.ndarray:
    """(len(picks), width, mel_bands): the picked windows, in the picks' order."""
    return np.stack([speakers[p.speaker].utterances[p.utterance][p.start:p.start + width] for p in picks])


@dataclass(frozen=True)
class EncoderBatch:
    mels: np.ndarray  # (speakers * utterances, partial_frames, mel_bands), speaker-major
    speakers: int
    utterances: int
    speaker_ids: Tuple[int, ...] = ()  # which speaker (index into the data's speakers) each block is


def fixed_batch(speakers: Sequence[Speaker], shape: BatchShape, partial_frames: int = 160) -> EncoderBatch:
    """A batch that never changes: the first speakers (in the data's order), each one's first
    utterances, each from its first frame (for a validation loss that is comparable across steps)."""
    picks = [PartialPick(s, u, 0) for s in range(shape.speakers) for u in range(shape.utterances)]
    return EncoderBatch(windows(speakers, picks, partial_frames), shape.speakers, shape.utterances,
                        tuple(range(shape.speakers)))


def steps_per_epoch(speakers: Sequence[Speaker], shape: BatchShape) -> int:
    """Batches in an epoch: about as many windows as the data has utterances (an epoch is
    voxmith's unit of a run's length; the official training draws batches without end)."""
    total = sum(len(s.utterances) for s in speakers)
    return max(1, -(-total // shape.size))


def usable_speakers(speakers: Sequence[Speaker]) -> List[Speaker]:
    return [s for s in speakers if len(s.utterances) >= MIN_UTTERANCES]


__all__ = ["BatchShape", "EncoderBatch", "EncoderBatches", "FrameCache", "MIN_SPEAKERS", "MIN_UTTERANCES",
           "PartialPick", "RandomCycler", "Speaker", "SpeakerSource", "batch_shape", "fixed_batch",
           "load_speakers", "steps_per_epoch", "usable_speakers", "utterance_frames", "windows"]

