"""Load benchmark of `voxmith serve`: N concurrent OpenAI-protocol clients against a loopback server.

Starts `voxmith serve` on a free 127.0.0.1 port (traffic never leaves the machine) with a workspace
holding the demo voice, warms it up with one request (enrolling the voice on first use), then runs
`--clients` threads that each send `POST /v1/audio/speech` requests back to back for `--duration`
seconds (requests still running at the end finish; no new ones start). Then a burst: `--burst`
requests at once, more than the pool may queue, to show the 503 + Retry-After answer and that
memory stays bounded. Measured: requests and audio seconds per second, latency and time to first
audio byte (p50/p95), errors by kind, the server's peak RSS (VmHWM) and its RSS over time.
Finally SIGTERM, which lets requests in progress finish.

    .venv/bin/python benchmarks/serve_load.py [--clients 8] [--duration 60] [--burst 32]
                                              [--workers N] [--format mp3] [--home DIR] [--out PATH]
Writes benchmarks/results/serve_load.json (with the CPU, its core count and the load average:
figures measured on a busy machine say so).
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
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve_load.json"
# What chat front ends send: a line or two of a reply.
TEXTS = [
    "Sure, I can help with that.",
    "The meeting has been moved to Thursday afternoon. Please let the others know.",
    "It is twenty past three, and the weather looks clear for the rest of the day.",
    "Here is a short summary. The report is finished, and the numbers look good.",
    "Thanks for waiting!",
    "Turn left at the next corner, then continue straight for about two hundred meters.",
]
REQUEST_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process from /proc (VmHWM: its peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values, q) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok, self.errors = [], {}

    def add_ok(self, row):
        with self.lock:
            self.ok.append(row)

    def add_error(self, kind):
        with self.lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1


def one_request(url: str, text: str, fmt: str, home: Path, recorder: Recorder) -> None:
    body = {"model": "tts-1", "voice": "demo", "input": text, "response_format": fmt}
    started = time.perf_counter()
    first = None
    size = 0
    try:
        with httpx.stream("POST", f"{url}/v1/audio/speech", json=body, timeout=REQUEST_TIMEOUT_S) as response:
            if response.status_code != 200:
                response.read()
                recorder.add_error(f"http {response.status_code}")
                return
            for chunk in response.iter_bytes():
                if first is None and chunk:
                    first = time.perf_counter() - started
                size += len(chunk)
            result = response.headers["x-voxmith-result"]
    except httpx.HTTPError as err:
        recorder.add_error(type(err).__name__)
        return
    sidecar = json.loads((home / "results" / result).with_suffix(".json").read_text())
    recorder.add_ok({"latency_s": time.perf_counter() - started, "ttfb_s": first, "bytes": size,
                     "audio_s": sidecar["output"]["duration_s"], "sentences": len(sidecar["sentences"])})


def steady_load(url: str, clients: int, duration_s: float, fmt: str, home: Path, pid: int) -> dict:
    recorder, rss_trace = Recorder(), []
    deadline = time.monotonic() + duration_s

    def client(index: int):
        k = index
        while time.monotonic() < deadline:
            one_request(url, TEXTS[k % len(TEXTS)], fmt, home, recorder)
            k += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        rss_trace.append((round(time.perf_counter() - started, 1), round(rss_mb(pid), 1)))
        time.sleep(1.0)
    elapsed = time.perf_counter() - started
    rows = recorder.ok
    latencies = [r["latency_s"] for r in rows]
    ttfb = [r["ttfb_s"] for r in rows if r["ttfb_s"] is not None]
    audio_s = sum(r["audio_s"] for r in rows)
    return {
        "clients": clients, "duration_s": duration_s, "elapsed_s": round(elapsed, 1),
        "requests_ok": len(rows), "errors": recorder.errors,
        "requests_per_s": round(len(rows) / elapsed, 3),
        "audio_s_per_s": round(audio_s / elapsed, 3),
        "latency_s": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                      "max": percentile(latencies, 100)},
        "time_to_first_audio_byte_s": {"p50": percentile(ttfb, 50), "p95": percentile(ttfb, 95),
                                       "max": percentile(ttfb, 100)},
        "mean_audio_s_per_request": round(audio_s / max(len(rows), 1), 3),
        "mean_sentences_per_request": round(float(np.mean([r["sentences"] for r in rows])), 2) if rows else None,
        "server_rss_mb_over_time": rss_trace[::max(1, len(rss_trace) // 12)],
    }


def burst(url: str, count: int, fmt: str, home: Path, pid: int) -> dict:
    recorder = Recorder()
    retry_after = []

    def fire(k):
        body = {"model": "tts-1", "voice": "demo", "input": TEXTS[k % len(TEXTS)], "response_format": fmt}
        try:
            response = httpx.post(f"{url}/v1/audio/speech", json=body, timeout=REQUEST_TIMEOUT_S)
        except httpx.HTTPError as err:
            recorder.add_error(type(err).__name__)
            return
        if response.status_code == 200:
            recorder.add_ok({"bytes": len(response.content)})
        else:
            recorder.add_error(f"http {response.status_code}")
            if "retry-after" in response.headers:
                retry_after.append(int(response.headers["retry-after"]))

    started = time.perf_counter()
    threads = [threading.Thread(target=fire, args=(k,)) for k in range(count)]
    for thread in threads:
        thread.start()
    peak = 0.0
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mb(pid))
        time.sleep(0.5)
    return {"requests": count, "answered_200": len(recorder.ok), "refused": recorder.errors,
            "retry_after_s": sorted(set(retry_after)), "elapsed_s": round(time.perf_counter() - started, 1),
            "server_rss_peak_during_burst_mb": round(peak, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of steady load")
    parser.add_argument("--burst", type=int, default=32, help="requests at once after the steady run (0: none)")
    parser.add_argument("--workers", type=int, default=None, help="server workers (default: the server's own)")
    parser.add_argument("--format", default="mp3")
    parser.add_argument("--home", type=Path, default=None, help="workspace (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from voxmith.engines.device import cpu_info
    from voxmith.studio import Studio

    temp = tempfile.TemporaryDirectory(prefix="voxmith-serve-load-") if args.home is None else None
    home = args.home or Path(temp.name) / "ws"
    Studio(home, device="cpu").import_demo_voice()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "voxmith", "--home", str(home), "-q", "--device", "cpu", "serve",
               "--listen", f"127.0.0.1:{port}"] + (["--workers", str(args.workers)] if args.workers else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    load_before = os.getloadavg()
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    report = {}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start: " + server.stderr.read().decode()[-2000:])
                time.sleep(0.5)
        print(f"server up on {url} (workers {health['workers']}, queue {health['max_waiting']})", flush=True)
        warm = Recorder()
        started = time.perf_counter()
        one_request(url, "Warming up the voice.", args.format, home, warm)  # enrolls the demo voice
        warm_up_s = time.perf_counter() - started
        if not warm.ok:
            raise SystemExit(f"warm-up request failed: {warm.errors}")
        rss_after_warm_up = rss_mb(server.pid)
        print(f"warm-up (enrollment) {warm_up_s:.1f} s; steady load: {args.clients} clients for "
              f"{args.duration:.0f} s", flush=True)
        steady = steady_load(url, args.clients, args.duration, args.format, home, server.pid)
        print(json.dumps({k: v for k, v in steady.items() if k != "server_rss_mb_over_time"}), flush=True)
        bursted = burst(url, args.burst, args.format, home, server.pid) if args.burst else None
        if bursted:
            print(f"burst: {json.dumps(bursted)}", flush=True)
        peak_rss = rss_mb(server.pid, "VmHWM")
        report = {
            "command": "benchmarks/serve_load.py " + " ".join(sys.argv[1:]),
            "cpu": cpu_info().model, "cpu_cores": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "note": "Other jobs shared this machine when the load average before the run is well above 0: "
                    "latencies then include waiting for the CPU.",
            "server": {"workers": health["workers"], "max_waiting": health["max_waiting"], "engine": "piper-vc",
                       "voice": "demo (bundled)", "format": args.format, "ranking": False},
            "warm_up_s": round(warm_up_s, 1),
            "server_rss_after_warm_up_mb": round(rss_after_warm_up, 1),
            "steady": steady,
            "burst": bursted,
            "server_peak_rss_mb": round(peak_rss, 1),
        }
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(REQUEST_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            code = "killed after the drain timeout"
        if temp is not None:
            temp.cleanup()
    if report:
        report["server_exit_after_sigterm"] = code
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
