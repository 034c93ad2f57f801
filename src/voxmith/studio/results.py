"""The results history: every result's record (its JSON sidecar, typed), newest first.

Conversions (`voxmith convert`) are listed only when asked for: the web UI's history of speech
shows text, which they have none of. Sidecars that cannot be read as a record (damaged, from a
newer voxmith) are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Union

from voxmith.errors import VoxmithError
from voxmith.fsutil import read_json
from voxmith.studio.record import ConversionRecord, ResultRecord, is_conversion


@dataclass(frozen=True)
class ResultEntry:
    audio_path: Path
    sidecar_path: Path
    record: Union[ResultRecord, ConversionRecord]

    @property
    def sidecar(self) -> dict:
        """The sidecar's JSON (as the record writes it)."""
        return self.record.to_json()

    @property
    def voice(self) -> str:
        return self.record.voice_label

    @property
    def takes(self) -> int:
        return sum(len(s.takes) for s in self.record.sentences) if isinstance(self.record, ResultRecord) else 1


def list_results(results_dir: Path, limit: int = 200, conversions: bool = False) -> List[ResultEntry]:
    """Spoken results (and converted recordings if `conversions`), newest first, at most `limit`."""
    entries = []
    for sidecar_path in results_dir.glob("*/*.json"):
        try:
            data = read_json(sidecar_path, default=None)
        except (ValueError, OSError):  # damaged (not JSON, not UTF-8) or unreadable: left out
            continue
        if not isinstance(data, dict) or "output" not in data:
            continue  # not a result's sidecar (a book's manifest...)
        try:
            if is_conversion(data):
                if not conversions:
                    continue
                record = ConversionRecord.from_json(data, str(sidecar_path))
            elif "text" in data:
                record = ResultRecord.from_json(data, str(sidecar_path))
            else:
                continue
        except VoxmithError:
            continue
        audio_path = sidecar_path.with_name(record.output_file)
        if record.output_file and audio_path.exists():
            entries.append(ResultEntry(audio_path, sidecar_path, record))
    entries.sort(key=lambda e: (e.record.created, e.sidecar_path.name), reverse=True)
    return entries[:limit]
