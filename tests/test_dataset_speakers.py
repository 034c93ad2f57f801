"""The dataset flag "unlike the main speaker", on a recording where a second real speaker takes
over for the last part (two shared voices joined; the threshold is calibrated by
benchmarks/speaker_flag_calibration.py on the same recordings)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from voxmith.audio import load_audio
from voxmith.datasets import PrepareSettings

RATE = 22050
GAP_S = 1.5  # longer than any pause inside a clip: the slicer cuts there


def test_second_speaker_in_a_recording_is_flagged(shared_voices, studio, tmp_path):
    main = sorted((shared_voices / "tom").glob("*.wav"))
    intruder = sorted((shared_voices / "emma").glob("*.wav"))[:2]
    pieces, boundary_s = [], None
    for i, path in enumerate(main + intruder):
        if path == intruder[0]:
            boundary_s = sum(p.shape[0] for p in pieces) / RATE
        pieces += [load_audio(path, sample_rate_hz=RATE).samples, np.zeros(int(GAP_S * RATE), np.float32)]
    recording = tmp_path / "interview.wav"
    sf.write(recording, np.concatenate(pieces), RATE)

    summary = studio.prepare_dataset("two", [recording], PrepareSettings(max_seconds=6.0))
    assert summary["name"] == "two"
    segments = studio.datasets.get("two").load()["segments"]
    flagged = {s["id"] for s in segments if any(f.startswith("unlike the main speaker") for f in s["flags"])}
    second = {s["id"] for s in segments if s["start_s"] >= boundary_s - 0.5 and s["duration_s"] >= 1.0}
    first = {s["id"] for s in segments if s["end_s"] <= boundary_s + 0.5 and s["duration_s"] >= 1.0}
    assert second and len(first) > len(second)
    assert second <= flagged, [(s["id"], s.get("speaker_similarity")) for s in segments]
    assert not (first & flagged), [(s["id"], s.get("speaker_similarity")) for s in segments]
