"""Training in a background thread, for shells that must stay responsive (web UI, HTTP API).

A `TrainingJob` trains one run with `TrainingRuns.train`, keeps the latest progress event and
the outcome, and forwards save/eval/quit commands to the loop through a queue. At most one job per
run at a time (two loops writing the same checkpoints would corrupt the run).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Dict, Optional

from voxmith.errors import VoxmithError
from voxmith.paths import canonical_name
from voxmith.progress import Progress


@dataclass
class JobState:
    run: str
    running: bool
    stage: str = ""
    done: int = 0
    total: Optional[int] = None
    detail: str = ""
    outcome: str = ""  # "finished at step N", "quit at step N", or the error message

    @property
    def text(self) -> str:
        if self.running:
            count = f"{self.done}/{self.total}" if self.total else str(self.done)
            return f"{self.run}: {self.stage} {count} {self.detail}".strip()
        return f"{self.run}: {self.outcome}" if self.outcome else f"{self.run}: not running"


class TrainingJob:
    def __init__(self, training_runs, run: str, force_restart: bool = False):
        self.run = run
        self.commands: "queue.Queue[str]" = queue.Queue()
        self._state = JobState(run, running=True, stage="starting")
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, args=(training_runs, force_restart),
                                        name=f"train-{run}", daemon=True)

    def start(self) -> "TrainingJob":
        self._thread.start()
        return self

    def _progress(self, event: Progress) -> None:
        with self._lock:
            self._state.stage, self._state.done, self._state.total = event.stage, event.done, event.total
            self._state.detail = event.detail or ""

    def _work(self, training_runs, force_restart: bool) -> None:
        try:
            result = training_runs.train(self.run, force_restart=force_restart, commands=self.commands,
                                         progress=self._progress, handle_sigint=False)
            outcome = f"{result.stopped} at step {result.step}"
        except VoxmithError as err:
            outcome = f"stopped: {err}"
        except Exception as err:  # a bug; keep the server alive and say what happened
            outcome = f"failed with {type(err).__name__}: {err}"
        with self._lock:
            self._state.running, self._state.outcome = False, outcome

    def send(self, command: str) -> None:
        if self.is_running():
            self.commands.put(command)

    def is_running(self) -> bool:
        return self._thread.is_alive()

    def state(self) -> JobState:
        with self._lock:
            return JobState(**vars(self._state))

    def wait(self, timeout: Optional[float] = None) -> JobState:
        self._thread.join(timeout)
        return self.state()


class TrainingJobs:
    """The jobs of one process, by run name."""

    def __init__(self, training_runs):
        self.training_runs = training_runs
        self._jobs: Dict[str, TrainingJob] = {}

    def start(self, run: str, force_restart: bool = False) -> TrainingJob:
        run = canonical_name(run)  # keyed by the one spelling: 'Zoë' pasted as NFD is the same job
        current = self._jobs.get(run)
        if current is not None and current.is_running():
            raise VoxmithError(f"Run '{run}' is already training.")
        holder = self.training_runs.trainer(run)  # e.g. `voxmith train run` in a terminal
        if holder is not None:
            raise VoxmithError(f"Run '{run}' is already being trained by {holder.describe()}. Stop it there "
                               "first (type quit, or Ctrl+C), then start it here.")
        problems = self.training_runs.check(run)
        if problems:
            raise VoxmithError(f"Run '{run}' cannot start:\n" + "\n".join(f"- {p}" for p in problems))
        job = self._jobs[run] = TrainingJob(self.training_runs, run, force_restart).start()
        return job

    def get(self, run: str) -> Optional[TrainingJob]:
        return self._jobs.get(canonical_name(run))
