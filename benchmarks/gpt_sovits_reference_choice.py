"""Which reference the gpt-sovits engine picks for each shared voice, and what Whisper hears in it.

    python benchmarks/gpt_sovits_reference_choice.py [/work/shared/voices]

For every voice: the chosen stretch (clip, start, length, speech ratio, SNR estimate), the number of
auxiliary references, the bundled Whisper transcript, and the seconds the choice and the transcript
took (on this CPU, under whatever load it has: the load average is recorded). No model weights are
needed: this is `GptSovitsEngine.prepare_conditioning` without the weights check.
Writes benchmarks/results/gpt_sovits_reference_choice.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from voxmith.audio import load_audio
from voxmith.engines.gpt_sovits.engine import GptSovitsEngine

OUT = Path(__file__).resolve().parent / "results" / "gpt_sovits_reference_choice.json"
AUDIO = {".wav", ".mp3", ".flac", ".ogg"}


def main(root: Path) -> None:
    engine = GptSovitsEngine()
    engine._injected = True  # no weights needed to choose and transcribe the reference
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        clips = [load_audio(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in AUDIO]
        started = time.perf_counter()
        conditioning = engine.prepare_conditioning(clips)
        notes = engine.conditioning_notes(conditioning)
        rows.append({"voice": folder.name, "clips": len(clips), **notes["reference"],
                     "duration_s": round(notes["reference"]["end_s"] - notes["reference"]["start_s"], 2),
                     "aux_references": len(notes["aux_references"]),
                     "seconds": round(time.perf_counter() - started, 1)})
        print(json.dumps(rows[-1], ensure_ascii=False))
    worst = min(rows, key=lambda r: r["speech_ratio"])
    result = {"load_average": os.getloadavg(), "cpus": os.cpu_count(), "voices": rows,
              "lowest_speech_ratio": {"voice": worst["voice"], "speech_ratio": worst["speech_ratio"]}}
    OUT.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/voices"))
