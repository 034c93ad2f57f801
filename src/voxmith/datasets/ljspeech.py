"""LJSpeech-style list files (`audio/NAME_00001.wav|transcript`) and the train/validation split."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, List, Tuple

from voxmith.fsutil import atomic_write_text

# Below this many usable segments a validation set would be too small to mean anything.
MIN_SEGMENTS_TO_SPLIT = 10


def split_train_validation(ids: List[str], validation_ratio: float) -> Tuple[List[str], List[str], str]:
    """Deterministic split by a hash of each id (stable when segments are added or dropped).
    Returns (train, validation, note); train is never empty."""
    if len(ids) < MIN_SEGMENTS_TO_SPLIT or validation_ratio <= 0:
        note = (f"Only {len(ids)} usable segment(s): everything is in train.txt and validation.txt is empty "
                f"(a split needs at least {MIN_SEGMENTS_TO_SPLIT})." if validation_ratio > 0 else "")
        return list(ids), [], note
    n_validation = min(len(ids) - 1, max(1, round(validation_ratio * len(ids))))
    ranked = sorted(ids, key=lambda i: hashlib.sha256(i.encode()).hexdigest())
    validation = set(ranked[:n_validation])
    return [i for i in ids if i not in validation], [i for i in ids if i in validation], ""


def format_line(audio_file: str, transcript: str) -> str:
    return f"{audio_file}|{' '.join(transcript.replace('|', ' ').split())}"


def write_list(path: Path, lines: List[str]) -> None:
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_list(path: Path) -> Dict[str, str]:
    """{audio file: transcript} from an LJSpeech list file."""
    entries = {}
    if not path.exists():
        return entries
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        audio, sep, text = line.partition("|")
        if not sep:
            raise ValueError(f"{path}:{number}: expected 'audio|transcript', got {line!r}")
        entries[audio] = text
    return entries
