"""A prepared dataset on disk: `segments.json` is the record, the list files are derived from it.

Every change (a transcript, an edit, a drop) rewrites `segments.json` atomically and then the
LJSpeech lists, so an interrupted job or an edit always leaves files that agree.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from voxmith.datasets.ljspeech import format_line, split_train_validation, write_list
from voxmith.errors import VoxmithError
from voxmith.fsutil import atomic_write_json, exclusive_lock, read_json_object
from voxmith.paths import canonical_name

SEGMENTS_FILE = "segments.json"
# The lists save() derives from the record, for training.
TRAIN_LIST, VALIDATION_LIST = "train.txt", "validation.txt"
# Segments with these flags are kept in segments.json (for review) but not put in the lists.
EXCLUDING_FLAGS = ("too short", "too long", "empty transcript")


def is_usable(segment: dict) -> bool:
    return (not segment.get("dropped") and segment.get("transcript") is not None
            and bool(segment["transcript"].strip())
            and not any(flag.startswith(EXCLUDING_FLAGS) for flag in segment.get("flags", [])))


@dataclass
class Dataset:
    name: str
    path: Path

    @property
    def record_path(self) -> Path:
        return self.path / SEGMENTS_FILE

    @contextmanager
    def changing(self, then: str) -> Iterator[None]:
        """Held while the dataset changes: by `prepare` for its whole run (two runs would slice and
        transcribe into the same files; it keeps the record in memory and rewrites it after every
        segment, so an edit meanwhile would be lost), by an edit for its write. Another process's
        change in progress is refused, not waited for (`then`: what to do instead). The lock sits
        beside the folder, so a refused or failed first run leaves no folder behind."""
        with exclusive_lock(self.path.parent / f".{self.name}.lock", wait=False) as held:
            if not held:
                raise VoxmithError(f"Dataset '{self.name}' is being prepared or edited by another voxmith process "
                                   f"right now; {then}.")
            yield

    def load(self) -> dict:
        try:
            record = read_json_object(self.record_path)
        except ValueError as problem:  # edited by hand into something that is not a JSON object
            raise self._damaged(problem) from None
        if record is None:
            raise VoxmithError(f"Dataset '{self.name}' has no {SEGMENTS_FILE}; prepare it again.")
        if not isinstance(record.get("segments"), list):
            raise self._damaged("it is not a dataset record")
        return record

    def _damaged(self, problem) -> VoxmithError:
        return VoxmithError(f"Dataset '{self.name}': '{self.record_path}' is damaged ({problem}). Fix it by hand, or "
                            "make the dataset again with `voxmith dataset prepare ... --redo` (edited transcripts "
                            "are lost).")

    def save(self, record: dict) -> None:
        """Write the record, then the train/validation lists derived from it."""
        usable = [s for s in record["segments"] if is_usable(s)]
        train, validation, note = split_train_validation([s["id"] for s in usable],
                                                         record["settings"]["validation_ratio"])
        in_validation = set(validation)
        for segment in record["segments"]:
            segment["split"] = ("validation" if segment["id"] in in_validation else "train") \
                if is_usable(segment) else None
        record["split_note"] = note
        atomic_write_json(self.record_path, record)
        by_id = {s["id"]: s for s in usable}
        write_list(self.path / TRAIN_LIST, [format_line(by_id[i]["file"], by_id[i]["transcript"]) for i in train])
        write_list(self.path / VALIDATION_LIST,
                   [format_line(by_id[i]["file"], by_id[i]["transcript"]) for i in validation])

    def find_segment(self, record: dict, segment: str) -> dict:
        """A segment by id ('NAME_00012') or number ('12')."""
        # compared in one spelling: a dataset prepared before names had one has ids spelt as its
        # folder was ('Zoe' + U+0308 + '_00001'), and the id may be pasted either way
        wanted = canonical_name(f"{self.name}_{int(segment):05d}" if segment.isdigit() else segment)
        for entry in record["segments"]:
            if canonical_name(str(entry["id"])) == wanted:
                return entry
        raise VoxmithError(f"Dataset '{self.name}' has no segment '{segment}' "
                           f"(segments are {record['segments'][0]['id']} to {record['segments'][-1]['id']})."
                           if record["segments"] else f"Dataset '{self.name}' has no segments.")

    def edit(self, segment: str, text: Optional[str] = None, drop: bool = False, restore: bool = False) -> dict:
        if drop and restore:  # the later one used to win, silently
            raise VoxmithError("Drop or restore the segment, not both (--drop contradicts --restore).")
        with self.changing("edit it when that has finished"):
            return self._edit(segment, text, drop, restore)

    def _edit(self, segment: str, text: Optional[str], drop: bool, restore: bool) -> dict:
        record = self.load()
        entry = self.find_segment(record, segment)
        if text is not None:
            if not text.strip():
                raise VoxmithError("The new transcript is empty; use --drop to remove a segment.")
            entry["transcript"], entry["edited"] = " ".join(text.split()), True
            entry["flags"] = [f for f in entry.get("flags", []) if f != "empty transcript"]
        if drop:
            entry["dropped"] = True
        if restore:
            entry["dropped"] = False
        self.save(record)
        return entry

    def summary(self) -> dict:
        record = self.load()
        segments = record["segments"]
        usable = [s for s in segments if is_usable(s)]
        durations = np.array([s["duration_s"] for s in usable]) if usable else np.zeros(0)
        edges = [0, 2, 4, 6, 8, 10, 12, 15, 20, 30]
        histogram = np.histogram(durations, bins=edges + [max(edges[-1], float(durations.max(initial=0))) + 1])[0]
        return {
            "name": self.name, "path": str(self.path), "sources": len(record["sources"]),
            "segments": len(segments), "usable": len(usable),
            "train": sum(s["split"] == "train" for s in segments),
            "validation": sum(s["split"] == "validation" for s in segments),
            "untranscribed": sum(s.get("transcript") is None and not s.get("dropped") for s in segments),
            "dropped": sum(bool(s.get("dropped")) for s in segments),
            "total_duration_s": float(durations.sum()),
            "histogram": [{"from_s": lo, "to_s": hi, "count": int(n)}
                          for lo, hi, n in zip(edges, edges[1:] + [None], histogram) if n],
            "flagged": [{"id": s["id"], "flags": s["flags"], "transcript": s.get("transcript")}
                        for s in segments if s.get("flags") and not s.get("dropped")],
            "note": " ".join(n for n in [record.get("split_note", "")] + [
                f"{Path(copy['path']).name} was left out: the same recording as {Path(copy['same_as']).name}."
                for copy in record.get("left_out", [])] if n),
        }
