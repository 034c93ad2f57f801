"""The result record (the sidecar beside every result) as types: old sidecars still load and
reproduce, every key round-trips (unknown ones too), fine-tune choices are explicit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from voxmith.audio import load_audio
from voxmith.errors import VoxmithError
from voxmith.studio import Studio, demo_voice_files
from voxmith.studio.record import SCHEMA_VERSION, FinetuneChoice, ResultRecord, read_result
from voxmith.studio.results import list_results

FIXTURES = Path(__file__).parent / "fixtures" / "sidecars"
OLD = FIXTURES / "v1-tone.json"  # written by voxmith before the record had a type (schema 1)


def test_an_old_sidecar_loads_with_everything_it_said():
    record = read_result(OLD)
    raw = json.loads(OLD.read_text())
    assert "schema" not in raw and record.schema == 1
    assert record.text == raw["text"] and record.seed == 21 and record.engine_name == "tone"
    assert record.voice.name == "demo" and record.voice.fingerprint == raw["voice"]["fingerprint"]
    assert record.finetune is None and record.refs is None and record.ranked
    again = record.to_json()
    assert {k: v for k, v in again.items() if k != "schema"} == raw and again["schema"] == 1
    assert ResultRecord.from_json(again) == record


def test_every_key_main_writes_and_unknown_keys_round_trip():
    raw = json.loads(OLD.read_text())
    raw.update(schema=SCHEMA_VERSION, origin={"api": "openai", "model": "tts-1"}, warnings=["w"],
               resumed={"sentences_done_before": 1, "sentences_total": 2},
               interrupted={"sentences_done": 1, "sentences_total": 2}, future_key={"kept": True})
    take = raw["sentences"][0]["takes"][0]
    take.update(engine_scores={"clvp": 0.5}, refused="too unnatural", future_take_key=3)
    raw["sentences"][0]["future_sentence_key"] = "x"
    record = ResultRecord.from_json(json.loads(json.dumps(raw)))
    assert record.resumed["sentences_done_before"] == 1 and record.interrupted["sentences_done"] == 1
    assert record.sentences[0].takes[0].refused == "too unnatural"
    assert record.sentences[0].takes[0].engine_scores == {"clvp": 0.5}
    assert record.extra == {"future_key": {"kept": True}}
    assert record.to_json() == raw


def test_newer_or_incomplete_sidecars_are_refused(tmp_path):
    raw = json.loads(OLD.read_text())
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**raw, "schema": SCHEMA_VERSION + 1}))
    with pytest.raises(VoxmithError, match="newer voxmith"):
        read_result(newer)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({k: v for k, v in raw.items() if k != "seed"}))
    with pytest.raises(VoxmithError, match="no valid seed"):
        read_result(broken)


def test_finetune_choice_is_explicit_and_reads_the_old_forms():
    assert FinetuneChoice.coerce(None) == FinetuneChoice.voice_setting()
    assert FinetuneChoice.coerce({}) == FinetuneChoice.stock()
    assert FinetuneChoice.coerce({"run": None}) == FinetuneChoice.stock()
    assert FinetuneChoice.coerce({"run": "r", "checkpoint": 7}) == FinetuneChoice.of_run("r", 7)
    assert FinetuneChoice.coerce({"run": "r"}).checkpoint == "latest"
    with pytest.raises(VoxmithError):
        FinetuneChoice("run")  # a run's checkpoint without a run
    with pytest.raises(VoxmithError):
        FinetuneChoice.coerce("latest")


def test_an_old_sidecar_reproduces_its_audio(tmp_path, tone_engine):
    studio = Studio(tmp_path / "ws", device="cpu")
    studio.voices.add("demo", demo_voice_files())
    folder = studio.workspace.results_dir / "demo"
    folder.mkdir(parents=True)
    for name in ("v1-tone.json", "v1-tone.wav"):
        shutil.copy(FIXTURES / name, folder / name)
    [entry] = list_results(studio.workspace.results_dir)
    assert entry.record == read_result(OLD) and entry.voice == "demo"
    again = studio.reproduce(folder / "v1-tone.json", output=tmp_path / "again.wav")
    assert np.array_equal(load_audio(tmp_path / "again.wav").samples, load_audio(FIXTURES / "v1-tone.wav").samples)
    assert again.record.schema == SCHEMA_VERSION and again.record.seed == 21
    assert json.loads(again.sidecar_path.read_text())["schema"] == SCHEMA_VERSION


OLD_CONVERSION = FIXTURES / "v1-convert.json"  # what `voxmith convert` wrote before its sidecar had a type


def test_an_old_conversion_sidecar_loads_and_round_trips():
    from voxmith.studio.record import CONVERSION_SCHEMA_VERSION, ConversionRecord, read_record

    raw = json.loads(OLD_CONVERSION.read_text())
    record = read_record(OLD_CONVERSION)
    assert isinstance(record, ConversionRecord) and record.schema == 1 and "schema" not in raw
    assert record.input_file == raw["input"]["file"] and record.voice.name == "demo" and record.refs is None
    assert record.engine_name == "piper-vc" and record.conversion["warp"] == 0.1
    assert (record.chunk_min_s, record.chunk_max_s, record.fit_s) == (2.0, 4.0, 30.0)
    again = record.to_json()
    assert {k: v for k, v in again.items() if k != "schema"} == raw and again["schema"] == 1
    assert ConversionRecord.from_json({**again, "future": 1}).extra == {"future": 1}
    with pytest.raises(VoxmithError, match="newer voxmith"):
        ConversionRecord.from_json({**raw, "schema": CONVERSION_SCHEMA_VERSION + 1})
    with pytest.raises(VoxmithError, match="not a complete conversion sidecar"):
        ConversionRecord.from_json({**raw, "engine": {}})
    # A spoken result is not a conversion, and reading it as speech says what it is.
    assert not isinstance(read_record(OLD), ConversionRecord)
    with pytest.raises(VoxmithError, match="no valid text"):
        read_result(OLD_CONVERSION)


def test_a_request_carries_an_explicit_finetune_choice():
    from voxmith.studio.speech import SpeakRequest

    assert SpeakRequest("Hi.", voice="v").finetune == FinetuneChoice.voice_setting()
    assert SpeakRequest("Hi.", voice="v", finetune={}).finetune == FinetuneChoice.stock()  # the old forms
    assert SpeakRequest("Hi.", voice="v", finetune={"run": "r", "checkpoint": 3}).finetune == \
        FinetuneChoice.of_run("r", 3)


def test_a_sidecar_deleted_while_it_is_read_is_said_to_be_gone(tmp_path, monkeypatch):
    """Between "it exists" and reading it, a deleted sidecar read as None: "it holds a JSON
    NoneType, not a result record" instead of "there is no result"."""
    import voxmith.studio.record as record

    sidecar = tmp_path / "take.json"
    sidecar.write_text("{}")
    original = record.read_json

    def deleted_first(path, *args, **kwargs):  # another process (or the web UI) removes it just now
        Path(path).unlink(missing_ok=True)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(record, "read_json", deleted_first)
    with pytest.raises(VoxmithError, match="There is no result at .*deleted or moved"):
        read_result(sidecar)
    with pytest.raises(VoxmithError, match="There is no result at"):
        read_result(tmp_path / "never.json")
