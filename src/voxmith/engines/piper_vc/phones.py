"""Phone timings from Piper and a per-frame "nucleus" weight for phone-aware conversion.

Piper's VITS graph predicts a duration per phoneme id (`/Ceil` = w_ceil, in decoder frames of
HOP samples); base_voice exposes it as an extra graph output (needs the `onnx` package; without
it there are no timings and conversion falls back to the uniform map). `nucleus_weights` turns
the timings into a weight per WORLD frame: 1 on vowels, `SONORANT` on liquids/nasals/glides,
0 on obstruents, silence and pauses, smoothed by a Hann window so the strong spectral map
cross-fades in and out over ~`SMOOTH_MS` instead of switching per frame.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

HOP = 256  # Piper decoder frame, samples at 22.05 kHz
DURATION_TENSOR = "/Ceil_output_0"
VOWELS = set("aeiouyæɐɑɒɔəɚɛɜɝɞɘɪʊʌᵻɨøœɯɤɵʉʏɶ")
SONORANTS = set("lmnŋɹrɾwjɫɭɲɳʋɻʍ")
SONORANT = 0.5
SMOOTH_MS = 30.0
# Tokens with no sound class of their own (stress, pads, modifiers): resolved from neighbours.
_NEUTRAL = set("ˈˌ_^ʲ̩̯̃")

# One span per id: (token, start sample, end sample) in the concatenated output.
Alignment = List[Tuple[str, int, int]]


def id_tokens(phonemes: Sequence[str], id_map) -> List[str]:
    """The token behind each id of piper.phoneme_ids.phonemes_to_ids (BOS, PAD between, EOS)."""
    tokens = ["^", "_"]
    for ph in phonemes:
        if ph in id_map:
            tokens += [ph, "_"]
    return tokens + ["$"]


def spans(tokens: Sequence[str], durations: np.ndarray, offset: int) -> Alignment:
    ends = offset + np.cumsum(np.asarray(durations, dtype=np.int64).reshape(-1)) * HOP
    starts = np.r_[offset, ends[:-1]]
    return [(t, int(s), int(e)) for t, s, e in zip(tokens, starts, ends)]


def _token_class(tokens: Sequence[str]) -> np.ndarray:
    value = np.full(len(tokens), np.nan)
    for k, t in enumerate(tokens):
        if t in VOWELS:
            value[k] = 1.0
        elif t in SONORANTS:
            value[k] = SONORANT
        elif t == "ː" and k:
            value[k] = np.nan  # resolved below from the vowel before it
        elif t not in _NEUTRAL:
            value[k] = 0.0  # obstruents, punctuation, spaces, EOS
    # Stress marks belong to the vowel after them; pads (VITS spreads sound over them) take
    # the mean of their neighbours, length marks extend the vowel before them.
    for k in range(len(tokens)):
        if np.isnan(value[k]):
            prev = next((value[i] for i in range(k - 1, -1, -1) if not np.isnan(value[i])), 0.0)
            nxt = next((value[i] for i in range(k + 1, len(tokens)) if not np.isnan(value[i])), 0.0)
            if tokens[k] == "ː":
                value[k] = prev
            elif tokens[k] in "ˈˌ":
                value[k] = nxt
            else:
                value[k] = 0.5 * (prev + nxt)
    return value


def token_under_frames(alignment: Alignment, n_frames: int, sample_rate_hz: int, frame_period_ms: float,
                       offset: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(index, inside): for each analysis frame's centre, the alignment span it falls in or the next
    one, and whether it is inside that span (False between and around spans); `offset`: samples cut
    from the take's start before the analysis."""
    centres = offset + (np.arange(n_frames) * frame_period_ms / 1000.0 * sample_rate_hz).astype(np.int64)
    starts = np.array([s for _, s, _ in alignment])
    ends = np.array([e for _, _, e in alignment])
    idx = np.clip(np.searchsorted(ends, centres, side="right"), 0, len(alignment) - 1)
    return idx, (centres >= starts[idx]) & (centres < ends[idx])


def nucleus_weights(alignment: Optional[Alignment], n_frames: int, sample_rate_hz: int,
                    frame_period_ms: float) -> Optional[np.ndarray]:
    """(n_frames,) weight in [0, 1] per WORLD frame, or None without timings."""
    if not alignment:
        return None
    value = _token_class([t for t, _, _ in alignment])
    idx, inside = token_under_frames(alignment, n_frames, sample_rate_hz, frame_period_ms)
    w = np.where(inside, value[idx], 0.0)
    half = max(1, int(round(SMOOTH_MS / frame_period_ms / 2)))
    win = np.hanning(2 * half + 1)
    win /= win.sum()
    return np.clip(np.convolve(w, win, mode="same"), 0.0, 1.0)
