"""Running one function on several threads at once, for tests of what concurrent requests share."""

from __future__ import annotations

import threading
from typing import Callable, List


def run_at_once(work: Callable[[], object], threads: int = 2) -> List[BaseException]:
    """`work` on `threads` threads released together (a barrier), all joined; the exceptions raised."""
    start, errors = threading.Barrier(threads), []

    def run():
        start.wait()
        try:
            work()
        except BaseException as err:  # noqa: BLE001 - returned to the test
            errors.append(err)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return errors
