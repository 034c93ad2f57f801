"""piper-vc's draws: each candidate is the take, among `draws` made at seeds DRAW_SEED_STRIDE apart,
whose GE2E embedding is nearest the voice's enrolled embedding; results made before the setting
existed reproduce at one draw. Real joe, real conversion of the enrolled demo voice."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from voxmith.engines.piper_vc import PiperVCEngine, world
from voxmith.engines.piper_vc.base_voice import get_base_voice
from voxmith.engines.piper_vc.engine import DRAW_SEED_STRIDE, PiperVCNaturalSettings, PiperVCSettings
from voxmith.errors import VoxmithError
from voxmith.speaker import get_speaker_encoder
from voxmith.studio import Studio
from voxmith.studio.speech import SpeakRequest

TEXT = "The porch light flickered twice before the storm arrived."


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory):
    studio = Studio(tmp_path_factory.mktemp("draws") / "ws", device="cpu")
    studio.import_demo_voice()
    engine = studio.engine("piper-vc")
    return studio, engine, dict(studio.conditioning("demo", engine)[0])


def one_draw(engine, conditioning, seed):
    settings = PiperVCSettings(draws=1)
    return engine.synthesize(TEXT, conditioning, settings, seed=seed)[0]


def test_the_draw_nearest_the_voice_is_kept(enrolled):
    _, engine, conditioning = enrolled
    first, second = one_draw(engine, conditioning, 3), one_draw(engine, conditioning, 3 + DRAW_SEED_STRIDE)
    assert not np.array_equal(first.samples, second.samples)
    encoder = get_speaker_encoder("cpu")
    for index, wanted in enumerate((first, second)):
        # The voice's embedding made the embedding of one draw: that draw must win.
        aimed = dict(conditioning, target_embedding=encoder.embed(wanted.samples, wanted.sample_rate_hz))
        [chosen] = engine.synthesize(TEXT, aimed, PiperVCSettings(draws=2), seed=3)
        np.testing.assert_array_equal(chosen.samples, wanted.samples)
        assert chosen.seed == 3 and chosen.details["draw"] == index
        assert [d["seed"] for d in chosen.details["draws"]] == [3, 3 + DRAW_SEED_STRIDE]
        similarity = [d["similarity"] for d in chosen.details["draws"]]
        assert similarity[index] == max(similarity) > 0.99


def test_draws_are_bounded_whole_numbers():
    assert PiperVCSettings().draws == 2
    assert PiperVCSettings.from_dict({"draws": 3}).draws == 3
    for bad in (0, 9, 1.5):
        with pytest.raises(VoxmithError, match="draws"):
            PiperVCSettings.from_dict({"draws": bad})


def test_the_guard_and_the_kokoro_engine_draw_once():
    assert PiperVCEngine(device="cpu")._guard_settings().draws == 1
    assert PiperVCNaturalSettings().draws == 1  # each draw of a Kokoro base costs about 0.5x real time


def test_a_result_from_before_draws_reproduces_at_one_draw(enrolled, tmp_path):
    studio, _, _ = enrolled
    made = studio.speak(SpeakRequest(TEXT, voice="demo", seed=5, rank=False, output=tmp_path / "now.wav"))
    assert made.sidecar["settings"]["draws"] == 2
    drawn = made.sidecar["sentences"][0]["takes"][0]["details"]
    assert len(drawn["draws"]) == 2 and drawn["draw"] in (0, 1)  # the sidecar says which draw was kept
    old = studio.speak(SpeakRequest(TEXT, voice="demo", seed=5, rank=False, settings={"draws": 1},
                                    output=tmp_path / "old.wav"))
    sidecar = json.loads(old.sidecar_path.read_text())
    del sidecar["settings"]["draws"]  # as engine 14 recorded its results before the setting
    old.sidecar_path.write_text(json.dumps(sidecar))
    again = studio.reproduce(old.sidecar_path, output=tmp_path / "again.wav")
    assert again.sidecar["settings"]["draws"] == 1
    assert np.array_equal(sf.read(again.path, dtype="int16")[0], sf.read(old.path, dtype="int16")[0])
    # One draw is the first of two: the same audio exactly when the first was kept.
    same = np.array_equal(sf.read(made.path, dtype="int16")[0], sf.read(old.path, dtype="int16")[0])
    assert same == (drawn["draw"] == 0)


def test_aperiodicity_analysed_later_is_the_same():
    samples = get_base_voice().speak("A short line for the analysis.", seed=0).samples
    whole = world.analyse(samples)
    later = world.analyse(samples, aperiodicity=False)
    assert later.ap is None
    np.testing.assert_array_equal(world.with_aperiodicity(samples, later).ap, whole.ap)
    assert world.with_aperiodicity(samples, whole) is whole


def test_joe_speaks_from_several_threads_as_from_one():
    """Draws run Piper at once on several threads (only espeak-ng's phonemizer is serialised)."""
    from concurrent.futures import ThreadPoolExecutor

    voice = get_base_voice()
    lines = ["The kettle whistled in the empty kitchen.", "Nobody answered the second letter.",
             "A gull circled over the harbour wall.", "Bring the blue folder when you come back."]

    def said(k: int) -> np.ndarray:
        return voice.speak(lines[k], seed=k, noise_scale=0.667, noise_w=0.8).samples

    alone = [said(k) for k in range(len(lines))]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(said, range(len(lines))))
    for one, other in zip(alone, together):
        np.testing.assert_array_equal(one, other)
