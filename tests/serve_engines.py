"""For the HTTP API's tests: a paced test engine (the tone engine, but each call takes `delay_s`
seconds, a stand-in for real synthesis time, and is counted, so tests can see streaming, queueing
and cancellation happen; registered only by test fixtures, which unregister it again) and
`running_api`, the API served on a free loopback port as `voxmith serve` serves it."""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

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


class _TeardownWitness:
    """Says so when the interpreter's shutdown frees it (module teardown), which a process that
    leaves at once never does (for tests of how `voxmith serve` exits)."""

    def __del__(self):
        os.write(2, b"module teardown\n")


def main() -> None:
    """`python -m tests.serve_engines ARGS...`: the voxmith CLI with this engine registered."""
    import atexit

    from voxmith.cli.main import main as voxmith_main
    from voxmith.engines import register_engine

    global _witness
    _witness = _TeardownWitness()
    atexit.register(os.write, 2, b"exit handlers ran\n")
    register_engine(PacedToneEngine.name, PacedToneEngine)
    voxmith_main()


if __name__ == "__main__":
    main()


@contextmanager
def running_api(studio, config, webui=None):
    """The API of `studio` under `config` (a voxmith.serve.ServeConfig) on a free loopback port in a
    background thread (uvicorn, as `voxmith serve` runs it): yields its base URL."""
    import uvicorn

    from voxmith.serve import build_app

    app = build_app(studio, config, webui=webui)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
