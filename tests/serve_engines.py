"""For the HTTP API's tests: a paced test engine (the tone engine, but each call takes `delay_s`
seconds, a stand-in for real synthesis time, and is counted, so tests can see streaming, queueing
and cancellation happen; registered only by test fixtures, which unregister it again) and
`running_api`, the API served on a free loopback port as `voxmith serve` serves it; `serve_process`,
a real `voxmith serve` process with that engine, once it answers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

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


def serve_process(home, port: int, *, output=subprocess.PIPE, preexec_fn=None) -> subprocess.Popen:
    """`voxmith serve` of workspace `home` on loopback `port`, in its own process with the paced
    engine (0.4 s a call), once /health answers; its stdout and stderr together go to `output`
    (a pipe by default, `.stdout`, for the caller to read once it has stopped it)."""
    import httpx

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "VOXMITH_TEST_DELAY_S": "0.4",
           "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root), os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen([sys.executable, "-m", "tests.serve_engines", "--home", str(home), "-q", "serve",
                               "--listen", f"127.0.0.1:{port}", "--workers", "1"], cwd=root, env=env,
                              stdout=output, stderr=subprocess.STDOUT, preexec_fn=preexec_fn)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return server
        except httpx.TransportError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                said = server.stdout.read().decode() if server.stdout is not None else ""
                raise AssertionError(f"the server did not start: {said}")
            time.sleep(0.2)
