"""A paced test engine for the HTTP API's tests: the tone engine, but each call takes `delay_s`
seconds (a stand-in for real synthesis time) and is counted, so tests can see streaming, queueing
and cancellation happen. Registered only by test fixtures, which unregister it again."""

from __future__ import annotations

import os
import threading
import time

from tests.tone_engine import ToneEngine


class PacedToneEngine(ToneEngine):
    name = "paced-tone"
    delay_s = float(os.environ.get("VOXMITH_TEST_DELAY_S", "0"))  # tests set it
    calls: list = []  # texts synthesised, in order
    _lock = threading.Lock()

    def synthesize(self, text, conditioning, settings, *, seed, candidates=1, progress=None):
        time.sleep(self.delay_s)
        with self._lock:
            self.calls.append(text)
        return super().synthesize(text, conditioning, settings, seed=seed, candidates=candidates, progress=progress)


def main() -> None:
    """`python -m tests.serve_engines ARGS...`: the voxmith CLI with this engine registered."""
    from voxmith.cli.main import main as voxmith_main
    from voxmith.engines import register_engine

    register_engine(PacedToneEngine.name, PacedToneEngine)
    voxmith_main()


if __name__ == "__main__":
    main()
