"""How long `voxmith serve` takes to exit after Ctrl-C, idle and after one ranked synthesis.

Starts `voxmith serve` on a free 127.0.0.1 port with a workspace holding the demo voice (`--home`,
reused between runs so the voice is enrolled once; a new temporary one by default), optionally
speaks once through `POST /voxmith/speak` (ranked: speaker encoder, Whisper, DistillMOS loaded),
sends SIGINT as Ctrl-C does and measures the wall and CPU time until the process is gone (CPU from
/proc before the signal and the child's rusage after). `--src` picks the voxmith sources (another
checkout's src/ to compare). Writes benchmarks/results/serve_exit.json with the load average
(figures measured on a busy machine say so).

    .venv/bin/python benchmarks/serve_exit.py [--home DIR] [--repeats 3] [--src PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve_exit.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(home: Path, src: Path, speak: bool) -> dict:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(src)}
    server = subprocess.Popen([sys.executable, "-m", "voxmith", "--home", str(home), "serve", "--listen",
                               f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("the server did not start")
            time.sleep(0.2)
    spoke_s = None
    if speak:
        started = time.monotonic()
        answer = httpx.post(f"{url}/voxmith/speak", json={"voice": "demo", "text": "Hello there."}, timeout=900)
        answer.raise_for_status()
        spoke_s = round(time.monotonic() - started, 2)
    before = _cpu_s(server.pid)
    started = time.monotonic()
    server.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(server.pid, 0)
    return {"spoke": speak, "speech_s": spoke_s, "exit_wall_s": round(time.monotonic() - started, 3),
            "exit_cpu_s": round(usage.ru_utime + usage.ru_stime - before, 3),
            "exit_status": os.waitstatus_to_exitcode(status)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="voxmith-serve-exit-")) / "ws"
    if not (home / "voices" / "demo").is_dir():
        subprocess.run([sys.executable, "-c", "import sys; from voxmith.studio import Studio; "
                        "Studio(sys.argv[1], device='cpu').import_demo_voice()", str(home)],
                       env={**os.environ, "PYTHONPATH": str(args.src)}, check=True)
    measure(home, args.src, speak=True)  # the voice enrolled, the models downloaded: not counted
    runs = [measure(home, args.src, speak) for _ in range(args.repeats) for speak in (False, True)]
    for run in runs:
        print(run)
    result = {"src": str(args.src), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
