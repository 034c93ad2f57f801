"""torch_threads: a thread count set for one piece of work does not leak into threads started later.

The process runs on 3 threads here (not the machine's count, so that a leak of 1 or of the default
shows on any machine)."""

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from voxmith.torch_threads import new_thread_count, on_torch_threads, process_threads, torch_threads

PROCESS = 3


@pytest.fixture(autouse=True)
def three_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(PROCESS)
    yield
    torch.set_num_threads(before)


def test_a_pool_task_on_one_thread_leaves_later_threads_at_the_process_count():
    with ThreadPoolExecutor(2) as pool:
        inside = list(pool.map(on_torch_threads(1, lambda _: torch.get_num_threads()), range(4)))
    assert inside == [1, 1, 1, 1]
    assert torch.get_num_threads() == PROCESS
    assert new_thread_count() == PROCESS


def test_overlapping_bodies_restore_the_process_count():
    first_in, release = threading.Event(), threading.Event()
    after_first = []

    def first():
        with torch_threads(1):
            first_in.set()
            release.wait(10)
        after_first.append(torch.get_num_threads())

    worker = threading.Thread(target=first)
    worker.start()
    first_in.wait(10)
    with torch_threads(2):
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == PROCESS     # this thread is back while the other body runs
    assert new_thread_count() == PROCESS      # and so are threads started from now on
    release.set()
    worker.join()
    assert after_first == [PROCESS]
    assert new_thread_count() == PROCESS


def test_nested_bodies_give_the_enclosing_count_back():
    with torch_threads(1):
        with torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == PROCESS


def test_a_thread_that_started_inside_a_window_runs_jobs_on_the_process_count():
    """A server's worker whose first operation fell inside an enrollment's window copied 1;
    process_threads gives it the process's count for each job, and it pins nothing else."""
    window_open, job, done = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def enrolling():
        with torch_threads(1):
            window_open.set()
            job.wait(10)

    def server_worker():
        window_open.wait(10)
        seen["copied"] = torch.get_num_threads()
        job.set()
        done.wait(10)
        with process_threads():
            seen["job"] = torch.get_num_threads()
        with torch_threads(seen["copied"]):      # a body entered by a pinned thread pins nobody
            pass

    threads = [threading.Thread(target=enrolling), threading.Thread(target=server_worker)]
    for t in threads:
        t.start()
    threads[0].join()
    done.set()
    threads[1].join()
    assert seen == {"copied": 1, "job": PROCESS}
    assert new_thread_count() == PROCESS


def test_the_count_comes_back_after_an_error():
    with pytest.raises(ValueError):
        with torch_threads(1):
            raise ValueError("boom")
    assert torch.get_num_threads() == PROCESS
    assert new_thread_count() == PROCESS


def test_silero_vad_loaded_on_a_worker_thread_leaves_the_process_count():
    """silero_vad's module code sets torch to one thread; the dataset slicer loads it without that
    leaking (a fresh process: the module runs once per process)."""
    script = (
        "import threading, numpy as np, torch\n"
        f"torch.set_num_threads({PROCESS})\n"
        "from voxmith.datasets.slicing import silero_speech_mask\n"
        "worker = threading.Thread(target=silero_speech_mask, args=(np.zeros(16000, np.float32),))\n"
        "worker.start(); worker.join()\n"
        "seen = []\n"
        "probe = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))\n"
        "probe.start(); probe.join()\n"
        "print(torch.get_num_threads(), seen[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(PROCESS), str(PROCESS)]
