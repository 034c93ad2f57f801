"""`voxmith book` reads with the weights `voxmith speak` would use: the voice's fine-tune (`voices
use`), checked on the voice by the engine's check (run once, cached), recorded per sentence; `--stock`
and `--run` as for speak. The training run is stood in for (tests/tone_engine.py's TunedToneEngine):
what is under test is how the studio resolves, checks and records the weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from voxmith.cli.main import cli
from voxmith.studio import Studio
from voxmith.studio.book import BookRequest
from voxmith.studio.record import FinetuneChoice
from voxmith.studio.speech import SpeakRequest

STEP = 7


@pytest.fixture
def tuned_tone(monkeypatch, tmp_path):
    """The fine-tunable tone engine as "tone", and run 'ft' whose latest checkpoint is step 7."""
    from tests.tone_engine import TunedToneEngine, stand_in_runs
    from voxmith.engines import register_engine
    from voxmith.engines.registry import unregister_engine

    stand_in_runs(monkeypatch, tmp_path, latest=STEP)
    register_engine("tone", TunedToneEngine)
    yield TunedToneEngine
    unregister_engine("tone")


def _book(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text("One two three four. Five six seven.\n")
    return path


def test_book_reads_with_the_voices_checked_finetune_and_records_it(tmp_path, tuned_tone):
    studio = Studio(tmp_path / "ws", device="cpu")
    studio.import_demo_voice()
    studio.voices.get("demo").update_metadata(finetune={"run": "ft", "checkpoint": "latest", "engine": "tone"})
    source = _book(tmp_path)

    tuned = studio.book(BookRequest(source=source, voice="demo", engine="tone", seed=3, rank=False,
                                    output_dir=tmp_path / "tuned", audio_format="wav"))
    used = {"run": "ft", "checkpoint": "latest", "step": STEP}
    manifest = json.loads((tuned.folder / "manifest.json").read_text())
    assert manifest["finetune"] == used and tuned.record.finetune.step == STEP
    assert len(manifest["sentences"]) == 2
    for sentence in manifest["sentences"]:  # as a speech's sidecar records its takes
        assert sentence["finetune"] == used
        assert sentence["details"]["guard"] == {"checked": "fine-tuned weights", "allowed": 0.5}
    assert len(tuned_tone.checks) == 1  # the check ran on the voice, once

    # The same sentence spoken by `speak` (the voice's setting, same seed) is the book's first sentence.
    spoken = studio.speak(SpeakRequest("One two three four.", voice="demo", engine="tone", seed=3, rank=False))
    assert spoken.record.finetune.step == STEP and len(tuned_tone.checks) == 1  # cached: not checked again
    first = tuned.sentence_audio("c01-s0001")
    np.testing.assert_array_equal(first[:spoken.samples.size], spoken.samples)

    # --stock reads with the stock weights: other audio, nothing recorded; no check.
    stock = studio.book(BookRequest(source=source, voice="demo", engine="tone", seed=3, rank=False,
                                    output_dir=tmp_path / "stock", audio_format="wav",
                                    finetune=FinetuneChoice.stock()))
    assert stock.record.finetune is None and "finetune" not in stock.manifest
    assert all("finetune" not in s and "guard" not in s.get("details", {}) for s in stock.manifest["sentences"])
    assert not np.array_equal(stock.sentence_audio("c01-s0001")[:first.size], first[:stock.sentence_audio("c01-s0001").size])
    assert len(tuned_tone.checks) == 1

    # A book started with the fine-tune is not finished with other weights: refused, saying how to match.
    runner = CliRunner()
    result = runner.invoke(cli, ["--home", str(tmp_path / "ws"), "-q", "book", str(source), "-v", "demo",
                                 "-e", "tone", "--no-rank", "--format", "wav", "-o", str(tmp_path / "tuned"),
                                 "--stock"])
    assert result.exit_code == 1 and f"--run ft --checkpoint {STEP}" in result.output, result.output
    # said so that a user of the API or the web UI, who has no options, knows what to choose too
    assert f"choose run 'ft', step {STEP} as the weights" in " ".join(result.output.split())
    result = runner.invoke(cli, ["--home", str(tmp_path / "ws"), "-q", "book", str(source), "-v", "demo",
                                 "-e", "tone", "--no-rank", "--format", "wav", "-o", str(tmp_path / "tuned"),
                                 "--run", "ft", "--checkpoint", str(STEP), "--redo", "c01-s0002"])
    assert result.exit_code == 0, result.output
    assert f"fine-tuned weights of run 'ft', step {STEP}" in result.output
    redone = json.loads((tmp_path / "tuned" / "manifest.json").read_text())["sentences"][1]
    assert redone["redo"] == 1 and redone["finetune"]["step"] == STEP
    assert len(tuned_tone.checks) == 1


def test_the_web_ui_book_tab_offers_the_weights_to_read_with(tmp_path):
    """The Book tab's Weights choice: the voice's setting, the stock weights, or a run's checkpoint,
    each turned into the request's FinetuneChoice as the CLI's --stock/--run would."""
    pytest.importorskip("gradio")
    from voxmith.webui.tab_book import finetune_choice, weights_choices

    studio = Studio(tmp_path / "ws", device="cpu")
    assert [value for _, value in weights_choices(studio)] == ["voice", "stock"]
    (studio.training.root / "alice-ft").mkdir(parents=True)
    (studio.training.root / "alice-ft" / "config.yaml").write_text("{}")
    values = [value for _, value in weights_choices(studio)]
    assert values == ["voice", "stock", "run:latest:alice-ft", "run:best:alice-ft"]
    assert finetune_choice("voice") == FinetuneChoice.voice_setting() == finetune_choice(None)
    assert finetune_choice("stock") == FinetuneChoice.stock()
    assert finetune_choice("run:best:alice-ft") == FinetuneChoice.of_run("alice-ft", "best")
    assert finetune_choice("run:latest:a:b") == FinetuneChoice.of_run("a:b", "latest")
