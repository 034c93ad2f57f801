"""A dataset's segments replaced whole, or not at all.

`dataset prepare` writes a new set of segments (their audio and segments.json) into a staging
folder inside the dataset's folder, and only when all of it is written are they swapped in: the old
`audio/` moves into the staging folder, the new one takes its place, and the new segments.json
replaces the old one (that replacement is the commit), followed at once by the train/validation
lists written with it. A failure, an interruption or a recording that changed before the commit
leaves the dataset as it was: no new files beside the old ones, none of the old ones gone. After the
commit the old segments are deleted with the staging folder; anything else the old `audio/` held
(files voxmith did not write there: a user's own recordings, notes, folders) moves into the new one.

A run killed before the commit leaves its staging folder behind; `settle_interrupted` moves back
what it had moved, then removes it. The next run on the dataset does so first, and so does listing
the datasets, for every dataset folder no run holds the lock of (DatasetLibrary.clear_abandoned: a
killed first run leaves no segments.json, so no dataset that would be listed or perhaps ever prepared
again). Not done here: the train/validation lists' contents (Dataset.save derives them from the record).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, List

from voxmith.datasets.store import SEGMENTS_FILE, TRAIN_LIST, VALIDATION_LIST, Dataset
from voxmith.errors import VoxmithError

AUDIO_FOLDER = "audio"
STAGING_PREFIX = ".preparing-"
_OLD_AUDIO = "replaced-audio"  # where the old audio/ waits, inside the staging folder, for the commit
_STAGING_NAME = re.compile(rf"{re.escape(STAGING_PREFIX)}[a-z0-9_]{{8}}")  # tempfile.mkdtemp's suffix
_SEGMENT_FILE = re.compile(r".+_\d{5}\.wav")  # what prepare writes into audio/ (ID_NNNNN.wav)


@contextlib.contextmanager
def replacing_segments(dataset: Dataset) -> Iterator[Dataset]:
    """Yield a Dataset in a new staging folder, with an empty `audio/`, to write the new segments and
    save their record into; when the block ends, swap them into `dataset` (the caller holds its lock,
    and has settled interrupted runs). If the block raises, or the swap fails, the dataset is left
    as it was (its folder too: if this made it, it is removed again)."""
    made_folder = not dataset.path.exists()
    dataset.path.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dataset.path))
    try:
        (staging / AUDIO_FOLDER).mkdir()
        yield Dataset(dataset.name, staging)
        _swap_in(staging, dataset)
    finally:
        with contextlib.suppress(OSError):  # if it cannot be settled now, the next run does it
            _settle(staging, dataset.path)
        if made_folder:
            with contextlib.suppress(OSError):
                dataset.path.rmdir()  # only if empty: a failure before the commit


def _swap_in(staging: Path, dataset: Dataset) -> None:
    if not (staging / SEGMENTS_FILE).is_file():
        raise RuntimeError("the new segments.json must be saved in the staging folder before the swap")
    audio = dataset.path / AUDIO_FOLDER
    try:
        if audio.exists():
            # Moved aside, not replaced: a folder cannot be renamed over a full one (on Windows, over any).
            audio.rename(staging / _OLD_AUDIO)
        (staging / AUDIO_FOLDER).rename(audio)
        os.replace(staging / SEGMENTS_FILE, dataset.record_path)
    except OSError as err:
        raise VoxmithError(f"Could not put the new segments of dataset '{dataset.name}' in place ({err}); the "
                           f"dataset is as it was. If a file in '{audio}' is open in another program, close it, "
                           "then run the command again.") from None
    _lists_in(staging, dataset.path)


def _lists_in(staging: Path, dataset_folder: Path) -> None:
    """The lists written with the committed record, in place of the old ones (which name the old
    segments' transcripts beside the new audio)."""
    for name in (TRAIN_LIST, VALIDATION_LIST):
        if (staging / name).exists():
            os.replace(staging / name, dataset_folder / name)


def _keep_users_files(staging: Path, dataset_folder: Path) -> None:
    """Move what the old audio/ held besides prepare's segment files into the new audio/."""
    old = staging / _OLD_AUDIO
    if not old.is_dir():
        return
    for entry in old.iterdir():
        if not (entry.is_file() and _SEGMENT_FILE.fullmatch(entry.name)):
            entry.rename(dataset_folder / AUDIO_FOLDER / entry.name)


def _settle(staging: Path, dataset_folder: Path) -> None:
    """Remove `staging`. A segments.json still in it means the swap did not commit: what it moved is
    moved back first (the new audio out, the old audio in). After a commit, the lists and the user's
    files in the old audio/ go where they belong first (a run killed right after its commit)."""
    if (staging / SEGMENTS_FILE).exists():
        audio = dataset_folder / AUDIO_FOLDER
        if audio.exists() and not (staging / AUDIO_FOLDER).exists():  # the new audio went in
            audio.rename(staging / AUDIO_FOLDER)
        if (staging / _OLD_AUDIO).exists():
            (staging / _OLD_AUDIO).rename(audio)
    else:
        _lists_in(staging, dataset_folder)
        _keep_users_files(staging, dataset_folder)
    shutil.rmtree(staging)


def settle_interrupted(dataset: Dataset) -> None:
    """Settle the staging folders that killed runs left in `dataset` (the caller holds its lock: none
    is in use), before anything reads it."""
    if not dataset.path.is_dir():
        return
    for folder in staging_folders(dataset.path):
        try:
            _settle(folder, dataset.path)
        except OSError as err:
            raise VoxmithError(f"An earlier, interrupted run left '{folder}', which cannot be cleared ({err}). "
                               "If a file in it or in the dataset's audio folder is open in another program, "
                               "close it, then run the command again.") from None


def staging_folders(dataset_folder: Path) -> List[Path]:
    """The staging folders in `dataset_folder`: a run's in progress, or killed runs' left behind."""
    return [folder for folder in dataset_folder.iterdir() if _STAGING_NAME.fullmatch(folder.name) and folder.is_dir()]
