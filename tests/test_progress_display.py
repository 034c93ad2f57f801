"""Progress bars a user reads: the rate and ETA must describe the work, not when it was reported.

Before: piper-vc's warp search scored a round of warps on two threads and reported them all at once
when the round ended, and the CLI's bar started at that first report: thousands of "it/s" and no ETA.
"""

from __future__ import annotations

import re
import threading
import time

from voxmith.cli.progress import TqdmProgress
from voxmith.engines.piper_vc.enrollment import WARP_GRID, WARP_REFINE, search_warp
from voxmith.progress import Progress


def _score(warp: float) -> float:
    time.sleep(0.03)
    return -abs(warp - 0.12)  # best near 0.12: the refinement rounds move


def test_warp_search_ticks_each_warp_as_it_finishes():
    ticks = []
    lock = threading.Lock()

    def tick(done, total):
        with lock:
            ticks.append((time.monotonic(), done, total))

    best, tried = search_warp(_score, tick, workers=2)
    total = len(WARP_GRID) + 2 * len(WARP_REFINE)
    assert [d for _, d, _ in ticks] == list(range(total + 1)) and {t for _, _, t in ticks} == {total}
    grid_ticks = [t for t, d, _ in ticks if 1 <= d <= len(WARP_GRID)]
    # The grid's warps were reported over the grid's time (3-4 sleeps on 2 threads), not in one burst.
    assert grid_ticks[-1] - grid_ticks[0] > 0.05
    # The same choice, scores and order as one thread.
    assert (best, list(tried.items())) == (lambda r: (r[0], list(r[1].items())))(search_warp(_score, workers=1))


def test_a_bar_first_seen_part_way_counts_its_rate_from_there(capsys):
    progress = TqdmProgress()
    progress(Progress("choosing warp", 7, 11))  # work done before the bar existed
    time.sleep(0.2)
    progress(Progress("choosing warp", 8, 11))
    bar = progress._bars["choosing warp"]
    meter = bar.format_meter(**bar.format_dict)
    progress.close()
    rate = re.search(r"([\d.]+)(step/s|s/step)", meter)  # a unit on either side of the slash
    assert rate, meter
    per_second = float(rate.group(1)) if rate.group(2) == "step/s" else 1 / float(rate.group(1))
    assert per_second < 10, meter  # one warp in 0.2 s: about 5/s, was 8/0.2 s = 40/s and more


def test_bars_name_what_they_count(tmp_path, demo_files):
    # Before: every bar counted "step"s: "checking clips: 1/2 [00:00<00:00, 9.50step/s]", and a
    # conversion "converting (seconds of the recording): 12/60 [..., 1.20step/s]".
    from click.testing import CliRunner

    from voxmith.cli.main import cli

    progress = TqdmProgress()
    for unit in ("sentence", ""):
        progress(Progress(f"counting {unit or 'steps'}", 1, 5, unit=unit))
        time.sleep(0.05)
        progress(Progress(f"counting {unit or 'steps'}", 2, 5, unit=unit))
    meters = [bar.format_meter(**bar.format_dict) for bar in progress._bars.values()]
    progress.close()
    assert re.search(r"(sentence/s|s/sentence)\]", meters[0]) and re.search(r"(step/s|s/step)\]", meters[1]), meters
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "ws"), "voices", "add", "alice", *map(str, demo_files)])
    assert result.exit_code == 0, result.output
    assert re.search(r"checking clips: .*2/2 \[.*(clip/s|s/clip)", result.output), result.output
    assert "step" not in result.output


def test_a_conversion_counts_up_to_the_total_it_announced(studio, demo_files, tmp_path):
    # Before: a 9.6 s recording was counted 0/10, then ended at 9/9.
    from tests.tone_engine import ToneEngine
    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine
    from voxmith.studio.conversion import ConvertRequest

    class Passthrough:
        details: dict = {}

        def __init__(self, rate):
            self.sample_rate_hz = rate

        def convert(self, samples):
            return samples

    class ToneConverter(ToneEngine):
        name = "tone-converter"
        supports_convert = True

        def converter(self, sample, conditioning, settings, progress=None):
            return Passthrough(self.sample_rate_hz)

    register_engine(ToneConverter.name, ToneConverter)
    try:
        studio.voices.add("v", demo_files)
        events = []
        studio.convert(ConvertRequest(source=demo_files[0], voice="v", engine=ToneConverter.name),
                       progress=lambda e: events.append(e) if e.stage.startswith("converting") else None)
    finally:
        unregister_engine(ToneConverter.name)
    totals = {e.total for e in events}
    assert {e.unit for e in events} == {"audio s"}  # seconds of the recording, not steps
    # and the rate says which way real time is: before, unit "s" read "4.00s/s" and "1.20s/s"
    from tqdm import tqdm

    assert "4.00audio s/s" in tqdm.format_meter(8, 60, 2.0, unit=events[0].unit)
    assert "1.20s/audio s" in tqdm.format_meter(10, 60, 12.0, unit=events[0].unit)
    assert len(totals) == 1 and events[-1].done == events[-1].total == totals.pop()
    assert all(e.done <= e.total for e in events)


def test_the_web_uis_bar_names_what_it_counts():
    # Before: every bar was a bare "3/12" (unit="").
    from voxmith.webui.progress import to_gradio

    shown = []
    callback = to_gradio(lambda value, desc=None, unit="": shown.append((value, desc, unit)))
    callback(Progress("reading the book (sentences)", 3, 12, unit="sentence"))
    callback(Progress("converting (seconds of the recording)", 4, 60, unit="audio s"))
    callback(Progress("training", 5, 100))
    assert [u for _, _, u in shown] == ["sentences", "audio s", ""]
