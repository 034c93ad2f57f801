"""Pronunciations of words no dictionary knows: the g2p_en neural model, run without NLTK data.

The official English front end falls back on g2p_en's `G2p.predict` (a GRU encoder-decoder over
letters, greedy decoding of ARPAbet phones). The g2p_en wheel on PyPI ships those weights
(`checkpoint20.npz`, 3.3 MB), but importing `g2p_en` downloads NLTK's cmudict and tagger from the
internet and its `G2p()` fails without them. So this module reads the checkpoint straight from the
installed package (found without importing it) and runs the same network: the same weights, the
same greedy decode (at most 20 phones, stop at </s>), so the phones match g2p_en's.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import List

import numpy as np

from voxmith.errors import EngineError

GRAPHEMES = ("<pad>", "<unk>", "</s>") + tuple("abcdefghijklmnopqrstuvwxyz")
# g2p_en's output vocabulary: 4 specials, then ARPAbet with stress (its order is the model's).
PHONEMES = ("<pad>", "<unk>", "<s>", "</s>") + tuple("""AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1
AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH EH0 EH1 EH2 ER0 ER1 ER2 EY0 EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1
IY2 JH K L M N NG OW0 OW1 OW2 OY0 OY1 OY2 P R S SH T TH UH0 UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH""".split())
START, END = PHONEMES.index("<s>"), PHONEMES.index("</s>")
MAX_PHONES = 20


def g2p_en_dir() -> Path:
    """The installed g2p_en package folder (without running its import-time downloads)."""
    spec = importlib.util.find_spec("g2p_en")
    if spec is None or not spec.submodule_search_locations:
        raise EngineError("The gpt-sovits English front end needs the g2p_en package "
                          "(`pip install g2p_en`; `make demo` installs it).")
    return Path(list(spec.submodule_search_locations)[0])


class NeuralG2P:
    """Letters -> ARPAbet phones with g2p_en's GRU sequence-to-sequence model."""

    def __init__(self, checkpoint: Path):
        with np.load(checkpoint) as weights:
            self.w = {name: weights[name] for name in weights.files}
        self._grapheme_ids = {g: i for i, g in enumerate(GRAPHEMES)}

    @staticmethod
    def _gru_step(x, h, w_ih, w_hh, b_ih, b_hh):
        """One GRU cell step (PyTorch's gate layout: reset, update, new)."""
        gates_x = x @ w_ih.T + b_ih
        gates_h = h @ w_hh.T + b_hh
        size = h.shape[-1]
        reset_update = 1.0 / (1.0 + np.exp(-(gates_x[:, :2 * size] + gates_h[:, :2 * size])))
        reset, update = reset_update[:, :size], reset_update[:, size:]
        new = np.tanh(gates_x[:, 2 * size:] + reset * gates_h[:, 2 * size:])
        return (1.0 - update) * new + update * h

    def predict(self, word: str) -> List[str]:
        w = self.w
        unknown = self._grapheme_ids["<unk>"]
        ids = [self._grapheme_ids.get(c, unknown) for c in word] + [self._grapheme_ids["</s>"]]
        h = np.zeros((1, w["enc_w_hh"].shape[-1]), np.float32)
        for index in ids:
            h = self._gru_step(w["enc_emb"][[index]], h, w["enc_w_ih"], w["enc_w_hh"], w["enc_b_ih"], w["enc_b_hh"])
        phones: List[str] = []
        previous = START
        for _ in range(MAX_PHONES):
            h = self._gru_step(w["dec_emb"][[previous]], h, w["dec_w_ih"], w["dec_w_hh"], w["dec_b_ih"], w["dec_b_hh"])
            logits = h @ w["fc_w"].T + w["fc_b"]
            previous = int(logits.argmax())
            if previous == END:
                break
            phones.append(PHONEMES[previous] if previous < len(PHONEMES) else "<unk>")
        return phones


@lru_cache(maxsize=1)
def neural_g2p() -> NeuralG2P:
    return NeuralG2P(g2p_en_dir() / "checkpoint20.npz")


def homographs() -> dict:
    """g2p_en's homograph table: word -> (phones when the tag starts with `tag`, other phones, tag)."""
    table = {}
    for line in (g2p_en_dir() / "homographs.en").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        word, first, second, tag = line.strip().split("|")
        table[word.lower()] = (first.split(), second.split(), tag)
    return table
