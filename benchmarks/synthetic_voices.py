"""Five voices no code path was tuned on, made offline: Kokoro-82M's stock styles as speakers.

Writes FOLDER/STYLE/clip0.wav ... clip3.wav (Kokoro's English through espeak-ng IPA, 22.05 kHz),
about 7 s each, of sentences that no benchmark, test, check or calibration uses; clone_quality.py
enrolls the first three and holds out the last, like a shared voice:

    PYTHONPATH=src .venv/bin/python benchmarks/synthetic_voices.py /tmp/kvoices
    VOXMITH_SHARED_VOICES=/tmp/kvoices PYTHONPATH=src .venv/bin/python benchmarks/clone_quality.py \\
        --no-cold-start --cond-dir DIR --config '{}' --out FILE

They are synthetic (cleaner and more regular than recordings: DistillMOS rates the held-out clips
3.3-4.5), four female and one male, so they say how a change holds on voices it never saw, not
what a user's recordings will score.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CLIPS = (
    "Every spring the river rises over the old stone bridge. The farmers wait for the water to fall before they plant.",
    "My cousin builds small wooden boats in his garage. He paints each one a different colour and gives them away.",
    "The museum opens a new exhibit about ancient maps next week. Tickets are free for students on Tuesday mornings.",
    "When the power went out, we lit candles and played cards at the kitchen table until it was time for bed.",
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    args = ap.parse_args()
    import soundfile as sf

    from voxmith.engines.piper_vc.base_voice import KOKORO_PREFIX, KOKORO_VOICES, get_base_voice

    for name in KOKORO_VOICES:
        voice = get_base_voice(name)
        folder = args.folder / name[len(KOKORO_PREFIX):]
        folder.mkdir(parents=True, exist_ok=True)
        for k, text in enumerate(CLIPS):
            sf.write(folder / f"clip{k}.wav", voice.speak(text, seed=k).samples, voice.sample_rate_hz)
        print(f"{folder}: {len(CLIPS)} clips", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
