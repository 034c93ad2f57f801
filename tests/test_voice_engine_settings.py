"""Settings a voice keeps for an engine (voice.json): applied under every request's, the request wins.
Used e.g. to keep gpt-sovits' corrected reference transcript with the voice."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path


def _sidecar(result) -> dict:
    wav = Path(result.output.strip().splitlines()[-1])
    return json.loads(wav.with_suffix(".json").read_text())


def test_voice_keeps_engine_settings_and_requests_override_them(run, demo_files, tone_engine):
    assert run("voices", "add", "alice", *map(str, demo_files)).exit_code == 0
    kept = run("voices", "settings", "alice", "--engine", "tone", "--set", "pitch_scale=2")
    assert kept.exit_code == 0 and "pitch_scale=2" in kept.output
    meta = json.loads((run.home / "voices" / "alice" / "voice.json").read_text())
    assert meta["engine_settings"] == {"tone": {"pitch_scale": "2"}}

    spoken = run("speak", "-v", "alice", "--engine", "tone", "--no-rank", "--seed", "1", "one two")
    assert spoken.exit_code == 0, spoken.output
    assert _sidecar(spoken)["settings"]["pitch_scale"] == 2.0

    over = run("speak", "-v", "alice", "--engine", "tone", "--no-rank", "--seed", "1", "--set", "pitch_scale=1.5",
               "one two")
    assert over.exit_code == 0, over.output
    assert _sidecar(over)["settings"]["pitch_scale"] == 1.5

    bad = run("voices", "settings", "alice", "--engine", "tone", "--set", "bogus=1")
    assert bad.exit_code == 1 and "Unknown setting" in bad.output and "Traceback" not in bad.output
    assert json.loads((run.home / "voices" / "alice" / "voice.json").read_text())["engine_settings"] == \
        {"tone": {"pitch_scale": "2"}}  # nothing changed by the refused value
    gone = run("voices", "settings", "alice", "--engine", "tone", "--unset", "pitch-scale")  # - read as _
    assert gone.exit_code == 0 and "keeps no settings" in gone.output
    assert not json.loads((run.home / "voices" / "alice" / "voice.json").read_text()).get("engine_settings")
    # A typo in --unset said the setting was forgotten while it stayed kept; --set and --unset of one name
    # at once unset it, silently.
    run("voices", "settings", "alice", "--engine", "tone", "--set", "pitch_scale=2")
    typo = run("voices", "settings", "alice", "--engine", "tone", "--unset", "pitch_scal")
    assert typo.exit_code == 1 and "pitch_scal: not a setting of tone" in typo.output
    both = run("voices", "settings", "alice", "--engine", "tone", "--set", "pitch_scale=3", "--unset", "pitch_scale")
    assert both.exit_code == 1 and "set and unset at once" in both.output
    assert json.loads((run.home / "voices" / "alice" / "voice.json").read_text())["engine_settings"] == \
        {"tone": {"pitch_scale": "2"}}


def test_show_names_another_engines_enrollment(run, demo_files):
    assert run("voices", "add", "alice", *map(str, demo_files)).exit_code == 0
    shown = run("voices", "show", "alice", "--engine", "gpt-sovits")
    assert shown.exit_code == 0, shown.output
    assert "Not enrolled" in shown.output


def test_an_enrollment_check_that_failed_with_everything_backed_off_says_so():
    from voxmith.cli.commands_voices import format_enrollment

    from voxmith.engines.piper_vc import guard

    failed = guard.GuardResult(guard.Strengths(0.0, 0.0, 0.0, 0.0), base_errors=3, errors=10, words=53,
                               steps=["statistics 0.5 -> 0: ..."], tolerance=5)
    notes = guard.summary(failed.to_conditioning())
    assert notes["passed"] is False
    assert "More than the 5 allowed above the base voice" in format_enrollment(notes)
    within = guard.summary(replace(failed, errors=8).to_conditioning())
    assert within["passed"] is True and "allowed above" not in format_enrollment(within)
    older = {k: v for k, v in notes.items() if k not in ("tolerance", "passed")}  # enrolled before it was stored
    assert "allowed above" not in format_enrollment(older)
