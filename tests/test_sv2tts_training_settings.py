"""sv2tts training settings (`train init --set NAME=VALUE`, the official --hparams): parsing,
checking, and their round trip through a run's config.yaml."""

from __future__ import annotations

import pytest

from voxmith.engines.sv2tts.engine import SV2TTSEngine
from voxmith.engines.sv2tts.training_settings import OFFICIAL_TTS_SCHEDULE, TrainingHparams
from voxmith.errors import VoxmithError
from voxmith.training.config import TrainingConfig, from_yaml, to_yaml


def test_shell_strings_are_read_as_literals_like_the_official_hparams():
    settings = SV2TTSEngine.parse_training_settings(
        {"stage": "vocoder", "ground_truth": "True", "tts_schedule": "[(2, 3e-5, 320_000, 12)]", "rescaling_max": "1"})
    assert settings["stage"] == "vocoder" and settings["ground_truth"] is True
    assert settings["tts_schedule"] == [[2, 3e-5, 320000, 12]]
    assert settings["rescaling_max"] == 1.0 and settings["max_mel_frames"] == 900  # defaults filled in
    assert TrainingHparams.from_settings(settings).tts_schedule == ((2, 3e-5, 320000, 12),)


@pytest.mark.parametrize("values, words", [
    ({"voc_lr": "1e-3"}, "--lr"),
    ({"save_every": "100"}, "save_every_steps"),
    ({"stages": "vocoder"}, "Known: stage"),
    ({"stage": "decoder"}, "synthesizer, vocoder"),
    ({"max_mel_frames": "9.5"}, "whole number"),
    ({"ground_truth": "maybe"}, "true or false"),
    ({"rescaling_max": float("nan")}, "should be a number"),  # from a config.yaml (.nan)
    ({"tts_schedule": "[(2, 1e-3)]"}, "sessions"),
    ({"tts_schedule": "[(2, 1e-3, 100, 12), (2, 1e-4, 50, 12)]"}, "previous"),
    ({"tts_schedule": "[(2, 1e-3, 100, 12), (2, 1e-4, 200, 8)]"}, "--batch-size"),
    ({"voc_seq_len": "0"}, "multiple of the hop"),
    ({"synthesizer_run": "syn", "ground_truth": "True"}, "set only one"),
])
def test_bad_settings_are_refused_with_what_to_do(values, words):
    with pytest.raises(VoxmithError, match=words):
        SV2TTSEngine.parse_training_settings(values)


def test_schedule_session_follows_the_model_step():
    hp = TrainingHparams()
    assert hp.schedule_session(0) == OFFICIAL_TTS_SCHEDULE[0]
    assert hp.schedule_session(20_000)[1] == 5e-4
    assert hp.schedule_session(295_000)[1] == 3e-5  # where the official pretrained synthesizer stands
    assert hp.schedule_session(10 ** 7) == OFFICIAL_TTS_SCHEDULE[-1]


def test_settings_survive_the_run_config():
    config = TrainingConfig()
    config.engine.settings = SV2TTSEngine.parse_training_settings({"stage": "vocoder"})
    again = from_yaml(to_yaml(config))
    assert again.engine.settings == config.engine.settings
    with pytest.raises(VoxmithError, match="names with values"):
        TrainingConfig.from_dict({"engine": {"settings": [1, 2]}})
