"""G2PW: readings of Chinese polyphones from their context, as the official GPT-SoVITS v2 front end
gets them (`text/g2pw/onnx_api.py`, from github.com/GitYCC/g2pW), run with onnxruntime.

The model folder is the official `G2PWModel/` (voxmith models download gpt-sovits; weights.py):
`g2pW.onnx` (a BERT with a per-character classifier over Zhuyin readings), `POLYPHONIC_CHARS.txt`
(character TAB reading: the readings the model chooses between), `MONOPHONIC_CHARS.txt`,
`bopomofo_to_pinyin_wo_tune_dict.json` (Zhuyin -> pinyin) and `config.py` (read as data: only
`use_mask` / `use_char_phoneme` matter for inference). The text is tokenised with the RoBERTa
tokenizer (`chinese-roberta-wwm-ext-large/tokenizer.json`, as the official code passes its
`bert_path`).

What `G2PW.readings(sentences)` does for each sentence, as the official converter:
1. the sentence converted to Taiwan traditional characters by OpenCC (`s2tw`; the model was trained
   on traditional text) - the official converter is made with this switched on;
2. per character: a polyphone (in the model's list, less 19 characters the official code excludes)
   is left to the model; a monophonic character gets its listed reading; anything else pypinyin's
   reading (TONE3, neutral tone 5) of the sentence converted back to simplified characters;
3. for the model: the stretch from 16 characters before the first polyphone to 16 after the last,
   lower-cased, cut into words (runs of ASCII letters/digits, else single characters) and word
   pieces; per polyphone a row of token ids, its character's id, its token position and the mask of
   readings it may take; rows of the same text share one copy of the tokens (the official
   de-duplication; the model broadcasts them); the arg-max reading, Zhuyin turned into pinyin.
Readings are pinyin with the tone digit last ("hang2"); a character the model cannot read keeps
None (the caller falls back to pypinyin).
"""

from __future__ import annotations

import ast
import gzip
import importlib.util
import json
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from voxmith.engines.gpt_sovits.chinese_normalize import chinese_data
from voxmith.engines.gpt_sovits.symbols import DATA_DIR
from voxmith.errors import EngineError

CONTEXT_CHARS = 16  # the official g2pw_polyphonic_context_chars default
MAX_TOKENS = 512
ONNX_THREADS = 2  # the official session's intra-op threads
_WORD_RE = re.compile(r"[a-zA-Z0-9]+")
MODEL_FILES = ("g2pW.onnx", "POLYPHONIC_CHARS.txt", "MONOPHONIC_CHARS.txt", "bopomofo_to_pinyin_wo_tune_dict.json",
               "config.py")


def g2pw_available() -> bool:
    """The libraries G2PW runs with are installed (the model files are looked for by weights.py)."""
    return all(importlib.util.find_spec(name) is not None for name in ("opencc", "onnxruntime", "pypinyin"))


def _pairs(path: Path) -> List[Tuple[str, str]]:
    return [tuple(line.split("\t")) for line in path.read_text(encoding="utf-8").strip().split("\n")]


def _config_flags(path: Path) -> Dict[str, bool]:
    """`use_mask` / `use_char_phoneme` from the folder's config.py, read as literals (never run)."""
    flags = {"use_mask": True, "use_char_phoneme": False}  # the official defaults
    if path.is_file():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                    and node.targets[0].id in flags:
                flags[node.targets[0].id] = bool(ast.literal_eval(node.value))
    return flags


class G2PW:
    """A loaded G2PW model with its tables (see the module docstring)."""

    def __init__(self, folder: Path, tokenizer_file: Path):
        missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
        if missing:
            raise EngineError(f"The G2PW model folder {folder} lacks {', '.join(missing)}: run "
                              "`voxmith models download gpt-sovits` again.")
        if not g2pw_available():
            raise EngineError("The G2PW model needs OpenCC and onnxruntime: pip install 'voxmith[zh]'.")
        import onnxruntime
        import opencc
        import pypinyin
        from tokenizers import Tokenizer

        self._pypinyin = pypinyin
        self._to_taiwan = opencc.OpenCC("s2tw")
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        flags = _config_flags(folder / "config.py")
        polyphonic = _pairs(folder / "POLYPHONIC_CHARS.txt")
        if flags["use_char_phoneme"]:
            self.labels = sorted({f"{c} {r}" for c, r in polyphonic})
            label_of = {label: i for i, label in enumerate(self.labels)}
            choices = [(c, label_of[f"{c} {r}"]) for c, r in polyphonic]
        else:
            self.labels = sorted({r for _, r in polyphonic})
            label_of = {label: i for i, label in enumerate(self.labels)}
            choices = [(c, label_of[r]) for c, r in polyphonic]
        self.char_labels: Dict[str, List[int]] = {}
        for char, label in choices:
            self.char_labels.setdefault(char, []).append(label)
        self.use_char_phoneme = flags["use_char_phoneme"]
        self.use_mask = flags["use_mask"]
        self.char_ids = {char: i for i, char in enumerate(sorted(self.char_labels))}
        data = chinese_data()
        self.polyphones = set(self.char_labels) - set(data["g2pw_not_polyphonic"])
        self.monophones = {c: r for c, r in _pairs(folder / "MONOPHONIC_CHARS.txt")
                           if c not in set(data["g2pw_not_monophonic"])}
        self.zhuyin_to_pinyin: Dict[str, str] = json.loads(
            (folder / "bopomofo_to_pinyin_wo_tune_dict.json").read_text(encoding="utf-8"))
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = ONNX_THREADS
        self.session = onnxruntime.InferenceSession(str(folder / "g2pW.onnx"), sess_options=options,
                                                    providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def pinyin(self, zhuyin: str) -> Optional[str]:
        """'ㄏㄤ2' -> 'hang2'; None for a reading the table lacks."""
        syllable = self.zhuyin_to_pinyin.get(zhuyin[:-1])
        return syllable + zhuyin[-1] if syllable else None

    # -- preparing the model's input ------------------------------------------------------------

    def _tokens(self, text: str) -> Tuple[List[str], List[Optional[int]], List[Tuple[int, int]]]:
        """Word pieces of `text`, the token of each character (None for spaces), each token's span."""
        tokens: List[str] = []
        spans: List[Tuple[int, int]] = []
        char_token: List[Optional[int]] = [None] * len(text)
        position = 0
        while position < len(text):
            if text[position] == " ":
                position += 1
                continue
            match = _WORD_RE.match(text, position)
            end = match.end() if match else position + 1
            pieces = self.tokenizer.encode(text[position:end], add_special_tokens=False).tokens
            if not pieces or pieces == ["[UNK]"]:
                pieces_spans = [("[UNK]", position, end)]
            else:
                pieces_spans, start = [], position
                for piece in pieces:
                    length = len(piece[2:] if piece.startswith("##") else piece)
                    pieces_spans.append((piece, start, start + length))
                    start += length
            for piece, start, stop in pieces_spans:
                for index in range(start, stop):
                    char_token[index] = len(tokens)
                tokens.append(piece)
                spans.append((start, stop))
            position = end
        return tokens, char_token, spans

    def _ids(self, tokens: Sequence[str]) -> List[int]:
        unknown = self.tokenizer.token_to_id("[UNK]")
        ids = [self.tokenizer.token_to_id(t) for t in ["[CLS]", *tokens, "[SEP]"]]
        return [unknown if i is None else i for i in ids]

    def _row(self, text: str, query: int, cache: dict) -> dict:
        """The model's input for the polyphone at `query` of `text` (already lower-cased)."""
        if text not in cache:
            cache[text] = self._tokens(text)
        tokens, char_token, spans = cache[text]
        context = text
        if len(tokens) > MAX_TOKENS - 2:
            text, query, tokens, char_token = _window(text, query, tokens, char_token, spans)
        char = text[query]
        labels = self.char_labels[char]
        mask = [1.0 if i in labels else 0.0 for i in range(len(self.labels))] if self.use_mask \
            else [1.0] * len(self.labels)
        return {"context": context, "ids": self._ids(tokens), "mask": mask, "char_id": self.char_ids[char],
                "position": char_token[query] + 1}

    # -- running it -----------------------------------------------------------------------------

    def _predict(self, rows: List[dict]) -> List[str]:
        """The arg-max label of each row. As officially: rows of the same context text form one batch
        that carries its tokens once (the model broadcasts them), all padded to the longest row."""
        predictions: List[str] = [""] * len(rows)
        groups: Dict[str, List[int]] = {}
        for index, row in enumerate(rows):
            groups.setdefault(row["context"], []).append(index)
        if all(len(members) == 1 for members in groups.values()):
            batches = [(list(range(len(rows))), False)]  # no shared text: one batch
        else:
            batches = [(members, len(members) > 1) for members in groups.values()]
        width = max(len(row["ids"]) for row in rows)
        for batch, shared in batches:
            token_rows = [rows[batch[0]]["ids"]] if shared else [rows[i]["ids"] for i in batch]
            input_ids = np.array([ids + [0] * (width - len(ids)) for ids in token_rows], dtype=np.int64)
            attention = np.array([[1] * len(ids) + [0] * (width - len(ids)) for ids in token_rows], dtype=np.int64)
            feed = {"input_ids": input_ids, "token_type_ids": np.zeros_like(input_ids), "attention_mask": attention,
                    "phoneme_mask": np.array([rows[i]["mask"] for i in batch], dtype=np.float32),
                    "char_ids": np.array([rows[i]["char_id"] for i in batch], dtype=np.int64),
                    "position_ids": np.array([rows[i]["position"] for i in batch], dtype=np.int64)}
            with self._lock:
                probabilities = self.session.run([], feed)[0]
            for i, label in zip(batch, np.argmax(probabilities, axis=1)):
                predictions[i] = self.labels[int(label)]
        return predictions

    def readings(self, sentences: Sequence[str]) -> List[List[Optional[str]]]:
        """Pinyin with tone digit of every character of each sentence (see the module docstring)."""
        results: List[List[Optional[str]]] = []
        rows: List[dict] = []
        targets: List[Tuple[int, int]] = []
        cache: dict = {}
        for number, sentence in enumerate(sentences):
            traditional = self._to_taiwan.convert(sentence)
            if len(traditional) != len(sentence):
                raise EngineError(f"OpenCC changed the length of '{sentence}'.")
            simplified = "".join(chinese_data()["traditional_to_simplified"].get(c, c) for c in traditional)
            fallback = self._pypinyin.pinyin(simplified, neutral_tone_with_five=True, style=self._pypinyin.Style.TONE3)
            result: List[Optional[str]] = [None] * len(traditional)
            polyphones = []
            for index, char in enumerate(traditional):
                if char in self.polyphones:
                    polyphones.append(index)
                elif char in self.monophones:
                    result[index] = self.pinyin(self.monophones[char])
                else:
                    result[index] = fallback[index][0]
            if polyphones:
                left = max(0, polyphones[0] - CONTEXT_CHARS)
                right = min(len(traditional), polyphones[-1] + CONTEXT_CHARS + 1)
                context = traditional[left:right].lower()
                for index in polyphones:
                    rows.append(self._row(context, index - left, cache))
                    targets.append((number, index))
            results.append(result)
        if rows:
            for (number, index), label in zip(targets, self._predict(rows)):
                zhuyin = label.split(" ")[1] if self.use_char_phoneme else label
                results[number][index] = self.pinyin(zhuyin)
        return results


def _window(text: str, query: int, tokens, char_token, spans):
    """The official cut of an over-long text: 510 tokens centred on the query's token."""
    keep = MAX_TOKENS - 2
    start = char_token[query] - keep // 2
    end = start + keep
    if start < 0:
        start, end = 0, keep
    elif end > len(tokens):
        start, end = len(tokens) - keep, len(tokens)
    first, last = spans[start][0], spans[end - 1][1]
    shifted = [None if t is None else t - start for t in char_token[first:last]]
    return text[first:last], query - first, tokens[start:end], shifted


@lru_cache(maxsize=1)
def load_corrections() -> Dict[str, List[str]]:
    """The official word -> readings corrections applied after G2PW (data/chinese_polyphonic.json.gz)."""
    with gzip.open(DATA_DIR / "chinese_polyphonic.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def corrected(word: str, readings: List[Optional[str]]) -> List[Optional[str]]:
    """The official `correct_pronunciation`: the word's listed readings when it is in the table,
    else each listed character's first reading."""
    table = load_corrections()
    if word in table:
        return list(table[word])
    readings = list(readings)
    for index, char in enumerate(word):
        if char in table:
            readings[index] = table[char][0]
    return readings
