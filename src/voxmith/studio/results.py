"""The results history: every spoken result's record (its JSON sidecar, typed), newest first.

Conversions (`voxmith convert`) are not listed here: they have no text to show in a history of
speech. Sidecars that cannot be read as a record (damaged, from a newer voxmith) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List

from voxmith.errors import VoxmithError
from voxmith.fsutil import read_json
from voxmith.studio.record import ResultRecord, is_conversion


@dataclass(frozen=True)
class ResultEntry:
    audio_path: Path
    sidecar_path: Path
    record: ResultRecord

    @property
    def sidecar(self) -> dict:
        """The sidecar's JSON (as the record writes it)."""
        return self.record.to_json()

    @property
    def voice(self) -> str:
        return self.record.voice_label

    @property
    def takes(self) -> int:
        return sum(len(s.takes) for s in self.record.sentences)


def list_results(results_dir: Path, limit: int = 200) -> List[ResultEntry]:
    entries = []
    for sidecar_path in results_dir.glob("*/*.json"):
        data = read_json(sidecar_path, default=None)
        if not isinstance(data, dict) or is_conversion(data) or "text" not in data or "output" not in data:
            continue  # not a spoken result's sidecar (a conversion, a book's manifest...)
        try:
            record = ResultRecord.from_json(data, str(sidecar_path))
        except VoxmithError:
            continue
        audio_path = sidecar_path.with_name(record.output_file)
        if record.output_file and audio_path.exists():
            entries.append(ResultEntry(audio_path, sidecar_path, record))
    entries.sort(key=lambda e: (e.record.created, e.sidecar_path.name), reverse=True)
    return entries[:limit]
