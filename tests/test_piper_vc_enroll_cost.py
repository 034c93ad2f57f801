"""What keeps piper-vc's enrollment cheap without changing its results: the guard's floor measured
once per base voice and rate, and the mel-cepstrum conversions as matrix products.
(The reuse of the base voice's takes across guard checks is tested with a real enrollment in
test_piper_vc_training.py.)"""

from __future__ import annotations

import numpy as np

from voxmith.engines.piper_vc import guard


def test_floor_is_measured_once_per_key_and_the_guard_takes_it_as_given():
    heard = []

    def speak(text, seed, strengths):
        heard.append((seed, strengths))
        return np.full(10, seed, np.float32)

    def transcribe(samples, rate_hz):  # sentence 0 heard right, the others with one word lost
        return "a b c" if samples[0] == 0 else "a b"

    sentences = ("a b c", "a b c", "a b c")
    key = ("scripted voice", 1.2)
    assert guard.floor(speak, sentences, transcribe, key=key) == 2
    assert guard.floor(speak, sentences, transcribe, key=key) == 2 and len(heard) == 3
    assert guard.floor(speak, sentences, transcribe, key=("scripted voice", 1.0)) == 2 and len(heard) == 6
    heard.clear()
    result = guard.guard(speak, guard.Strengths(), sentences=sentences, tolerance=0, transcribe=transcribe,
                         base_errors=2)
    assert result.base_errors == 2 and result.steps == [] and all(s is not None for _, s in heard)


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
