"""BERT features of Chinese text for GPT-SoVITS: `chinese-roberta-wwm-ext-large`, one 1024-d vector
per character, repeated over the character's phones.

What the official code does (`TTS_infer_pack/TextPreprocessor.py: get_bert_feature`): the
normalised text (Chinese characters and `!?…,.`, one token each) through the tokenizer
(`[CLS] ... [SEP]`) and `BertForMaskedLM` with all hidden states; the features are the third-last
hidden state without the [CLS]/[SEP] positions, repeated `word2ph[i]` times for character i, then
transposed to (1024, phones). Here the same weights run in `transformers.BertModel` with the last
two layers dropped, so its last hidden state IS that third-last state (two layers less work; the
masked-LM head never affects it). Tokenizer: the folder's `tokenizer.json` through `tokenizers`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from voxmith.errors import EngineError

FEATURE_DIM = 1024
HIDDEN_STATE_FROM_END = 3  # the official hidden_states[-3]


class ChineseBert:
    """A loaded RoBERTa (BERT architecture) and its tokenizer."""

    def __init__(self, model: torch.nn.Module, tokenizer, device: str | torch.device = "cpu"):
        # hidden_states[-3] is the output of layer L-2: keep layers 1..L-2 only.
        keep = model.config.num_hidden_layers - (HIDDEN_STATE_FROM_END - 1)
        model.encoder.layer = model.encoder.layer[:keep]
        model.config.num_hidden_layers = keep
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu") -> "ChineseBert":
        """From the official folder: config.json, pytorch_model.bin (a BertForMaskedLM's weights,
        keys `bert.*`; the masked-LM head `cls.*` is not needed) and tokenizer.json."""
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        folder = Path(folder)
        try:
            config = BertConfig.from_json_file(str(folder / "config.json"))
            state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except (OSError, ValueError, RuntimeError) as err:
            raise EngineError(f"Cannot load chinese-roberta-wwm-ext-large from {folder}: {err}. Delete it and run "
                              "`voxmith models download gpt-sovits` to fetch it again.") from None
        model = BertModel(config, add_pooling_layer=False)
        encoder = {key[len("bert."):]: value for key, value in state.items() if key.startswith("bert.")}
        missing, _ = model.load_state_dict(encoder, strict=False)
        missing = [key for key in missing if not key.endswith("position_ids")]
        if missing:
            raise EngineError(f"{folder / 'pytorch_model.bin'} is not a chinese-roberta-wwm-ext-large checkpoint "
                              f"(missing {', '.join(missing[:3])}...).")
        return cls(model, tokenizer, device)

    @torch.no_grad()
    def character_features(self, text: str) -> torch.Tensor:
        """(characters, 1024): one feature per token of `text` without [CLS]/[SEP]."""
        ids = self.tokenizer.encode(text).ids
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        with self._lock:
            hidden = self.model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        return hidden[0, 1:-1].float().cpu()

    def phone_features(self, text: str, word2ph: Optional[Sequence[int]]) -> np.ndarray:
        """(1024, phones) float32: character i's feature repeated word2ph[i] times."""
        if word2ph is None or len(word2ph) != len(text):
            raise EngineError(f"BERT features need one phone count per character of '{text}'.")
        features = self.character_features(text)
        if features.shape[0] != len(text):
            raise EngineError(f"The RoBERTa tokenizer cut '{text}' into {features.shape[0]} tokens, not one "
                              f"per character ({len(text)}).")
        counts = torch.tensor(list(word2ph), dtype=torch.long)
        return features.repeat_interleave(counts, dim=0).T.contiguous().numpy()
