"""The workspace's datasets: one folder each under the datasets root, a dataset once it has its
segments.json (`store.Dataset`).

A first `dataset prepare` killed before its commit (SIGKILL, power loss) leaves a folder holding
only its staging folder, possibly gigabytes of sliced audio, and no segments.json: not a dataset, so
never listed, and settled only if the user prepares that same name again. A killed `--redo` leaves
one beside the dataset (and perhaps the dataset half swapped), settled only when that dataset is
next prepared. Listing the datasets therefore settles every dataset folder's leftovers first
(`clear_abandoned`), unless their run is alive (holds the dataset's lock), and removes a folder that
was no dataset when nothing else is in it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from shlex import quote
from typing import List

from voxmith.datasets.staging import settle_interrupted, staging_folders
from voxmith.datasets.store import SEGMENTS_FILE, Dataset
from voxmith.errors import VoxmithError
from voxmith.paths import canonical_name, named_folder


class DatasetLibrary:
    def __init__(self, datasets_dir: Path):
        self.root = datasets_dir
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, name: str) -> Path:
        return named_folder(self.root, name, "dataset")

    def at(self, name: str) -> Dataset:
        """Dataset `name` in its one spelling, prepared or not (its folder may not exist yet)."""
        path = self.path_for(name)  # (validates `name` first)
        return Dataset(canonical_name(name), path)

    def names(self) -> List[str]:
        self.clear_abandoned()
        # a name spelt by two folders (NFC and NFD) is one name, listed once (and refused when used)
        return sorted({canonical_name(p.name) for p in self.root.iterdir() if (p / SEGMENTS_FILE).exists()})

    def clear_abandoned(self) -> None:
        """Settle the staging folders of prepares killed before their commit (a first prepare's or a
        --redo's), and remove the folder of a first one if that empties it. Never raises: what cannot
        be settled now is left as it is (a listing must not fail because of a leftover)."""
        for folder in self.root.iterdir():
            try:
                if folder.is_dir() and staging_folders(folder):
                    self._clear_abandoned(folder)
            except (OSError, VoxmithError):
                continue

    def _clear_abandoned(self, folder: Path) -> None:
        # Raises VoxmithError for a name no prepare could have made, or one two folders spell (no
        # dataset to settle), where a live run holds the dataset's lock (its staging folder is in
        # use), and where the leftover cannot be settled (a file in it open elsewhere).
        dataset = self.at(folder.name)
        with dataset.changing("its leftover is cleared at a later listing"):
            settle_interrupted(dataset)
            if not any(dataset.path.iterdir()):  # only if empty: whatever else the user put there stays
                dataset.path.rmdir()

    def get(self, name: str) -> Dataset:
        dataset = self.at(name)
        if not dataset.record_path.exists():
            known = ", ".join(self.names()) or "none yet"
            raise VoxmithError(f"No dataset named '{dataset.name}'. Datasets: {known}. Create it with "
                               f"`voxmith dataset prepare {quote(dataset.name)} --from VOICE_OR_FILES`.")
        return dataset

    def remove(self, name: str) -> None:
        shutil.rmtree(self.get(name).path)
