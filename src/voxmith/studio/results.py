"""The results history: every generated file's JSON sidecar, newest first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from voxmith.errors import VoxmithError
from voxmith.fsutil import read_json
from voxmith.studio.record import ResultRecord


@dataclass(frozen=True)
class ResultEntry:
    audio_path: Path
    sidecar_path: Path
    sidecar: dict

    @property
    def record(self) -> Optional[ResultRecord]:
        """The sidecar as its typed record; None for one that is not a spoken result (a conversion)."""
        try:
            return ResultRecord.from_json(self.sidecar, str(self.sidecar_path))
        except VoxmithError:
            return None

    @property
    def voice(self) -> str:
        return self.sidecar.get("voice", {}).get("name") or "(reference clips)"


def list_results(results_dir: Path, limit: int = 200) -> List[ResultEntry]:
    entries = []
    for sidecar_path in results_dir.glob("*/*.json"):
        sidecar = read_json(sidecar_path, default=None)
        if not isinstance(sidecar, dict) or "text" not in sidecar or "output" not in sidecar:
            continue
        audio_path = sidecar_path.with_name(sidecar["output"]["file"])
        if audio_path.exists():
            entries.append(ResultEntry(audio_path, sidecar_path, sidecar))
    entries.sort(key=lambda e: (e.sidecar.get("created", ""), e.sidecar_path.name), reverse=True)
    return entries[:limit]
