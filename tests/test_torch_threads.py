"""torch_threads: a thread count set for one piece of work does not leak into threads started later."""

import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from voxmith.torch_threads import on_torch_threads, torch_threads


def _count_in_new_thread() -> int:
    seen = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_a_pool_task_on_one_thread_leaves_later_threads_at_the_process_count():
    process = torch.get_num_threads()
    with ThreadPoolExecutor(2) as pool:
        inside = list(pool.map(on_torch_threads(1, lambda _: torch.get_num_threads()), range(4)))
    assert inside == [1, 1, 1, 1]
    assert torch.get_num_threads() == process
    assert _count_in_new_thread() == process


def test_overlapping_bodies_restore_the_process_count_when_the_last_one_ends():
    process = torch.get_num_threads()
    first_in, second_done, first_done = threading.Event(), threading.Event(), threading.Event()

    def first():
        with torch_threads(1):
            first_in.set()
            second_done.wait(10)
        first_done.set()

    worker = threading.Thread(target=first)
    worker.start()
    first_in.wait(10)
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == process     # this thread got its own count back
    second_done.set()
    worker.join()
    assert first_done.is_set()
    assert _count_in_new_thread() == process


def test_the_count_comes_back_after_an_error():
    process = torch.get_num_threads()
    try:
        with torch_threads(1):
            raise ValueError("boom")
    except ValueError:
        pass
    assert torch.get_num_threads() == process
    assert _count_in_new_thread() == process


def test_silero_vad_loaded_on_a_worker_thread_leaves_the_process_count(tmp_path):
    """silero_vad's module code sets torch to one thread; the dataset slicer loads it without that
    leaking (a fresh process: the module runs once per process)."""
    import subprocess
    import sys

    script = (
        "import threading, numpy as np, torch\n"
        "from voxmith.datasets.slicing import silero_speech_mask\n"
        "before = torch.get_num_threads()\n"
        "worker = threading.Thread(target=silero_speech_mask, args=(np.zeros(16000, np.float32),))\n"
        "worker.start(); worker.join()\n"
        "seen = []\n"
        "probe = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))\n"
        "probe.start(); probe.join()\n"
        "print(before, torch.get_num_threads(), seen[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, main_after, new_thread = out.stdout.split()
    assert before == main_after == new_thread
