"""What keeps piper-vc's enrollment cheap without changing its results: the guard's floor measured
once per base voice and rate (and kept on disk), the warp search's scores on two threads, and the
mel-cepstrum conversions as matrix products.
(The reuse of the base voice's takes across guard checks is tested with a real enrollment in
test_piper_vc_training.py.)"""

from __future__ import annotations

import numpy as np

from voxmith.engines.piper_vc import guard


def test_floor_is_measured_once_per_key_and_the_guard_takes_it_as_given():
    heard = []

    def speak(text, seed, strengths):
        heard.append((seed, strengths))
        return np.full(10, seed + 1, np.float32)

    def transcribe(samples, rate_hz):  # the sentences are heard joined; each of them loses a word
        return " ".join(["a b"] * int(np.count_nonzero(np.diff(samples) != 0) // 2 + 1))

    sentences = ("a b c", "a b c", "a b c")
    key = ("scripted voice", 1.2)
    assert guard.floor(speak, sentences, transcribe, key=key) == 3
    assert guard.floor(speak, sentences, transcribe, key=key) == 3 and len(heard) == 3
    assert guard.floor(speak, sentences, transcribe, key=("scripted voice", 1.0)) == 3 and len(heard) == 6
    heard.clear()
    result = guard.guard(speak, guard.Strengths(), sentences=sentences, tolerance=0, transcribe=transcribe,
                         base_errors=3)
    assert result.base_errors == 3 and result.steps == [] and all(s is not None for _, s in heard)


def test_floor_with_an_identity_is_kept_on_disk_for_later_processes(tmp_path, monkeypatch):
    from voxmith.engines.piper_vc import base_cache

    monkeypatch.setattr(base_cache, "folder", lambda: tmp_path / "cache")
    monkeypatch.setattr(guard, "_floors", {})  # a fresh process
    heard = []

    def speak(text, seed, strengths):
        heard.append(seed)
        return np.full(10, seed + 1, np.float32)

    def transcribe(samples, rate_hz):  # each sentence heard loses a word
        return " ".join(["a b"] * int(np.count_nonzero(np.diff(samples) != 0) // 2 + 1))

    sentences = ("a b c", "a b c")
    identity = guard.floor_identity(type("Voice", (), {"identity": ("joe", "1")})(), 1.2, ("whisper=x",))
    assert guard.floor(speak, sentences, transcribe, key=("joe", 1.2), identity=identity) == 2 and len(heard) == 2
    monkeypatch.setattr(guard, "_floors", {})  # another process: read from disk, nothing said
    assert guard.floor(speak, sentences, transcribe, key=("joe", 1.2), identity=identity) == 2 and len(heard) == 2
    # Another rate, or a voice that cannot name what it depends on (no identity): measured.
    other = guard.floor_identity(type("Voice", (), {"identity": ("joe", "1")})(), 1.15, ("whisper=x",))
    assert other != identity
    assert guard.floor(speak, sentences, transcribe, key=("joe", 1.15), identity=other) == 2 and len(heard) == 4
    assert guard.floor_identity(object(), 1.2, ("whisper=x",)) is None
    # A damaged file is measured again.
    for path in (tmp_path / "cache").iterdir():
        path.write_text('{"errors": -1}')
    monkeypatch.setattr(guard, "_floors", {})
    assert guard.floor(speak, sentences, transcribe, key=("joe", 1.2), identity=identity) == 2 and len(heard) == 6


def test_checks_hear_their_sentences_joined_in_windows_and_stop_past_the_limit(monkeypatch):
    sr = guard.world.SAMPLE_RATE_HZ
    seconds = {"a b": 12.0, "c d": 10.0, "e f": 9.0, "g h": 30.0}
    heard = []

    def speak(text, seed, strengths):
        return np.full(int(seconds[text] * sr), seed + 1, np.float32)

    def transcribe(samples, rate_hz):  # each sentence heard with its first word lost
        runs = [int(v) for k, v in enumerate(samples) if v and (k == 0 or samples[k - 1] != v)]
        heard.append((runs, round(samples.size / rate_hz, 2)))
        return " ".join(sentences[r - 1].split()[1] for r in runs)

    sentences = ("a b", "c d", "e f", "g h")
    monkeypatch.setattr(guard, "JOIN_WINDOW_S", 28.0)
    # 12 + 0.5 + 10 fits in 28 s, adding 9 would not; 30 s alone is its own window.
    assert guard._windows([12.0, 10.0, 9.0, 30.0]) == [[0, 1], [2], [3]]
    assert guard.heard_errors(speak, sentences, None, transcribe) == (4, False)
    assert heard == [([1, 2], 22.5), ([3], 9.0), ([4], 30.0)]
    heard.clear()
    assert guard.heard_errors(speak, sentences, None, transcribe, limit=1) == (2, True) and len(heard) == 1
    monkeypatch.setattr(guard, "JOIN_WINDOW_S", 0.0)  # one sentence per pass (the default)
    assert guard._windows([1.0, 1.0]) == [[0], [1]]
    heard.clear()
    assert guard.heard_errors(speak, sentences, None, transcribe, limit=1) == (2, True) and len(heard) == 2


def test_calibration_audio_is_kept_on_disk_exactly(tmp_path, monkeypatch):
    from voxmith.engines.piper_vc import base_cache, enrollment
    from voxmith.engines.piper_vc.base_voice import PiperOutput

    monkeypatch.setattr(base_cache, "folder", lambda: tmp_path / "cache")
    said = []

    class Voice:
        identity = ("scripted", "1")

        def speak(self, text, seed):
            said.append(text)
            rng = np.random.default_rng(len(text))
            return PiperOutput(rng.standard_normal(1000).astype(np.float32) * 0.3, [], None)

    first = enrollment.calibration_audio(Voice())
    again = enrollment.calibration_audio(Voice())  # a later process: read back, nothing said
    assert len(said) == len(enrollment.CALIBRATION_SENTENCES)
    assert all(a.dtype == np.float32 and np.array_equal(a, b) for a, b in zip(first, again))
    for path in (tmp_path / "cache").iterdir():  # damaged: said again
        path.write_text('{"samples": ["!!", "??"]}')
    assert all(np.array_equal(a, b) for a, b in zip(enrollment.calibration_audio(Voice()), first))
    assert len(said) == 2 * len(enrollment.CALIBRATION_SENTENCES)


def test_warp_search_on_two_threads_scores_and_chooses_as_on_one():
    import threading
    import time

    from voxmith.engines.piper_vc import enrollment

    def score(warp):  # peaked at 0.14 with a near-tie at -0.14 (the tie rule picks by |warp|, then score)
        return 0.8 - abs(abs(warp) - 0.14) - (0.001 if warp < 0 else 0.0)

    threads = set()

    def traced(warp):
        threads.add(threading.current_thread().name)
        time.sleep(0.05)  # long enough that both threads take a warp
        return score(warp)

    ticks = []
    one = enrollment.search_warp(score)
    two = enrollment.search_warp(traced, lambda done, total: ticks.append((done, total)), workers=2)
    assert two[0] == one[0] and list(two[1].items()) == list(one[1].items())
    assert len(threads) == 2 and [d for d, _ in ticks] == list(range(0, len(one[1]) + 1))  # 0: the bar starts with the search


def test_mel_cepstrum_conversions_equal_pysptks_per_frame_ones():
    import pysptk

    from voxmith.engines.piper_vc import world

    rng = np.random.default_rng(0)
    # A smooth random envelope over 7 decades, as CheapTrick gives, plus digital silence.
    sp = np.exp(np.cumsum(rng.normal(0, 0.3, (6, world.FFT_SIZE // 2 + 1)), axis=1) - 10)
    sp[0] = 0.0
    want = pysptk.sp2mc(np.maximum(sp, 1e-16), world.ORDER, world.ALPHA)
    got = world.sp_to_mcep(sp)
    assert got.shape == want.shape and np.allclose(got, want, rtol=0, atol=1e-9)
    back = world.mcep_to_sp(want)
    assert np.allclose(np.log(back), np.log(pysptk.mc2sp(want, world.ALPHA, world.FFT_SIZE)), rtol=0, atol=1e-9)
    assert world.mcep_to_sp(want[1]).shape == (world.FFT_SIZE // 2 + 1,)
