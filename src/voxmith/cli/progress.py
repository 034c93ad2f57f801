"""Adapt core `Progress` events to tqdm bars on stderr (one bar per stage)."""

from __future__ import annotations

import sys
from typing import Dict

from tqdm import tqdm

from voxmith.cli.interrupts import raise_if_lost
from voxmith.progress import Progress


class TqdmProgress:
    def __init__(self, enabled: bool = True, unit: str = "step"):
        self.enabled = enabled
        # The unit of events that name none (an event's own unit wins: "sentence", "clip", "audio s").
        # "B" shows bytes with K/M/G prefixes (downloads); an empty unit read "4.98/s" and "1.20s/".
        self.unit = unit
        self._bars: Dict[str, tqdm] = {}
        self._last_line = ""

    def __call__(self, event: Progress) -> None:
        raise_if_lost()  # a Ctrl-C that Python dropped in a callback from C stops the command here
        if not self.enabled:
            return
        if event.total is None:  # open-ended work: one line per step, no bar
            line = f"{event.stage}: {event.detail}" if event.detail else event.stage
            if line != self._last_line:
                tqdm.write(line, file=sys.stderr)
                self._last_line = line
            return
        bar = self._bars.get(event.stage)
        if bar is None:
            # `initial`: work done before the first event (a resumed job, a round finished before it
            # reported) is not counted as done in no time, which showed absurd rates and no ETA.
            unit = event.unit or self.unit
            bar = tqdm(total=event.total, desc=event.stage, unit=unit, unit_scale=unit == "B",
                       file=sys.stderr, leave=unit == "B", dynamic_ncols=True, initial=event.done)
            self._bars[event.stage] = bar
        if bar.total != event.total:
            bar.total = event.total
        bar.n = event.done
        if event.detail:
            bar.set_postfix_str(event.detail, refresh=False)
        bar.refresh()
        if event.done >= event.total:
            bar.close()
            del self._bars[event.stage]

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
