"""The voxmith CLI with a slow `tone` engine (tests/tone_engine.py plus a pause per synthesis), for
tests that interrupt a run from outside: `python tests/slow_tone_cli.py ARGS...` (from the repo root).
SLOW_TONE_S sets the pause in seconds."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.tone_engine import ToneEngine  # noqa: E402
from voxmith.cli.main import cli  # noqa: E402
from voxmith.engines import register_engine  # noqa: E402


class SlowToneEngine(ToneEngine):
    def synthesize(self, text, conditioning, settings, *, seed, candidates=1, progress=None):
        time.sleep(float(os.environ.get("SLOW_TONE_S", "0.3")))
        return super().synthesize(text, conditioning, settings, seed=seed, candidates=candidates, progress=progress)


if __name__ == "__main__":
    register_engine("tone", SlowToneEngine)
    cli.main(sys.argv[1:], prog_name="voxmith")
