"""GPT-SoVITS fine-tuning features (training_data.py) on real clips with tiny random-weight models:
what the official recipe stores per line, computed once and cached atomically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxmith.engines.base import TrainingLine
from voxmith.engines.gpt_sovits import training_data
from voxmith.engines.gpt_sovits.frontend import phones_for
from voxmith.errors import VoxmithError


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models():
    from tests.test_gpt_sovits_engine import tiny_models

    return tiny_models(3)


@pytest.fixture
def lines(demo_files):
    return [TrainingLine(demo_files[0], "Printing, in the only sense with which we are at present concerned."),
            TrainingLine(demo_files[1], "It was 100% done.")]


def test_features_are_what_the_recipe_stores(models, lines, tmp_path):
    got = training_data.load_lines(lines, tmp_path, models.hubert, models.sovits)
    first = got[0]
    assert first.language == "en" and first.phone_ids.tolist() == phones_for(lines[0].text.strip(), "en")[0]
    assert "percent" not in got[1].text and got[1].phone_ids.tolist() == phones_for("It was 100- done.", "en")[0]
    # 32 kHz, loudness-mixed: peak 0.5 * 0.95 + 0.5 * original peak, on the int16 grid
    from voxmith.audio import load_audio

    original = load_audio(lines[0].audio_path, sample_rate_hz=32000).samples
    peak = float(np.abs(original).max())
    assert first.wave_32k.shape == original.shape
    assert abs(float(np.abs(first.wave_32k).max()) - (0.475 + 0.5 * peak)) < 1e-3
    np.testing.assert_array_equal(first.wave_32k * 32768, np.round(first.wave_32k * 32768))
    # HuBERT at 50 Hz, codes at 25 Hz, both as the models compute them
    frames = first.hubert.shape[1]
    assert first.hubert.shape[0] == 768 and abs(frames - first.duration_s * 50) <= 2
    assert first.codes.shape == (frames // 2,) and first.codes.max() < 1024
    with torch.no_grad():
        expect = models.sovits.extract_codes(torch.from_numpy(first.hubert)[None])[0].reshape(-1)
    np.testing.assert_array_equal(first.codes, expect.numpy())


def test_cached_once_and_resumed_per_line(models, lines, tmp_path, monkeypatch):
    key = training_data.models_key(models.hubert, models.sovits)
    training_data.load_lines(lines[:1], tmp_path, models.hubert, models.sovits)
    folder = training_data.cache_folder(tmp_path, key)
    assert len(list(folder.glob("*.npz"))) == 1 and not list(folder.glob("*.tmp*"))
    computed = []
    real = training_data.compute_line
    monkeypatch.setattr(training_data, "compute_line", lambda line, *models: computed.append(line) or real(line, *models))
    again = training_data.load_lines(lines, tmp_path, models.hubert, models.sovits)
    assert computed == [lines[1]] and len(again) == 2  # the first line came from the cache
    # other weights make other codes: their own cache
    from tests.test_gpt_sovits_engine import tiny_models

    assert training_data.models_key(models.hubert, tiny_models(4).sovits) != key


def test_a_line_the_recipe_refuses_says_why(models, tmp_path):
    import soundfile as sf

    loud = tmp_path / "loud.wav"
    sf.write(loud, np.full(32000, 0.5, np.float32) * np.sin(np.arange(32000) / 5.0) * 5, 32000, subtype="FLOAT")
    with pytest.raises(VoxmithError, match="peaks at"):
        training_data.load_lines([TrainingLine(loud, "Too loud.")], tmp_path, models.hubert, models.sovits)
    with pytest.raises(VoxmithError, match="cannot be read"):
        training_data.load_lines([TrainingLine(tmp_path / "gone.wav", "Gone.")], tmp_path, models.hubert, models.sovits)
