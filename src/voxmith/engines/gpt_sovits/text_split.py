"""How GPT-SoVITS cuts a text into the pieces it synthesises one at a time.

The official inference (`TTS_infer_pack/text_segmentation_method.py` and `TextPreprocessor.py`)
offers six methods; voxmith keeps their names and behaviour so a user of the official web UI finds
the same choices:

- cut0: no cut;  cut1: every 4 sentences;  cut2: about every 50 characters;
- cut3: at Chinese full stops (。);  cut4: at English full stops (not between digits);
- cut5 (default): at every punctuation mark (a '.' between digits does not cut).

`segments(text, method, language)` then does what the official preprocessing does around the
method: collapse repeated punctuation, prefix a '.' when the first phrase is very short, drop empty
and symbol-only pieces, merge pieces shorter than 5 characters into the one before, end every
piece with a stop, and cut pieces over 510 characters at punctuation.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, List

# Characters that end a sentence or clause for `_sentences`, the short-first-phrase rule and
# `split_long` (the official `splits`).
STOPS = frozenset({"\uff0c", "\u3002", "\uff1f", "\uff01", ",", ".", "?", "!", "~", ":", "\uff1a", "\u2014", "\u2026"})
# A piece made of these alone says nothing and is dropped.
SILENT = frozenset({"!", "?", "\u2026", ",", ".", "-", " "})
# Where cut5 cuts.
CUT5_MARKS = frozenset({",", ".", ";", "?", "!", "\u3001", "\uff0c", "\u3002", "\uff1f", "\uff01", "\uff1a", "\u2026"})
MAX_PIECE_CHARS = 510
MIN_PIECE_CHARS = 5
_REPEATED_MARKS_RE = re.compile(r"([!?\u2026,.\-])([!?\u2026,.\-])+")


def _keep(pieces: List[str], silent=SILENT) -> str:
    return "\n".join(p for p in pieces if not set(p) <= silent)


def _sentences(text: str) -> List[str]:
    """Pieces each ending at a STOPS character (a final stop is added when missing)."""
    text = text.replace("\u2026\u2026", "\u3002").replace("\u2014\u2014", "\uff0c")
    if text[-1] not in STOPS:
        text += "\u3002"
    pieces, start = [], 0
    for index, char in enumerate(text):
        if char in STOPS:
            pieces.append(text[start:index + 1])
            start = index + 1
    return pieces


def cut0(text: str) -> str:
    return "\n" if set(text) <= SILENT else text


def cut1(text: str) -> str:
    text = text.strip("\n")
    sentences = _sentences(text)
    starts = list(range(0, len(sentences), 4))
    if len(starts) < 2:
        return _keep([text])
    # The last group takes what is left (up to 7 sentences), as the official grouping does.
    bounds = starts[:-1] + [len(sentences)]
    return _keep(["".join(sentences[a:b]) for a, b in zip(bounds, bounds[1:])])


def cut2(text: str) -> str:
    text = text.strip("\n")
    sentences = _sentences(text)
    if len(sentences) < 2:
        return text
    pieces, current, length = [], "", 0
    for sentence in sentences:
        current += sentence
        length += len(sentence)
        if length > 50:
            pieces.append(current)
            current, length = "", 0
    if current:
        pieces.append(current)
    if len(pieces) > 1 and len(pieces[-1]) < 50:
        pieces[-2:] = [pieces[-2] + pieces[-1]]
    return _keep(pieces)


def cut3(text: str) -> str:
    return _keep(text.strip("\n").strip("\u3002").split("\u3002"))


def cut4(text: str) -> str:
    return _keep(re.split(r"(?<!\d)\.(?!\d)", text.strip("\n").strip(".")))


def cut5(text: str) -> str:
    text = text.strip("\n")
    pieces, current = [], ""
    for index, char in enumerate(text):
        current += char
        if char not in CUT5_MARKS:
            continue
        between_digits = (char == "." and 0 < index < len(text) - 1
                          and text[index - 1].isdigit() and text[index + 1].isdigit())
        if not between_digits:
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return _keep(pieces, CUT5_MARKS)


METHODS: Dict[str, Callable[[str], str]] = {
    "cut0": cut0, "cut1": cut1, "cut2": cut2, "cut3": cut3, "cut4": cut4, "cut5": cut5,
}
DEFAULT_METHOD = "cut5"


def split_long(text: str, max_chars: int = MAX_PIECE_CHARS) -> List[str]:
    """Cut a piece over `max_chars` at punctuation into pieces of at most `max_chars` (a single
    clause longer than that stays whole)."""
    parts = re.split("([" + re.escape("".join(sorted(STOPS))) + "])", text)
    pieces, current = [], ""
    for part in parts:
        if len(current + part) > max_chars:
            pieces.append(current)
            current = part
        else:
            current += part
    if current:
        pieces.append(current)
    return pieces


def _merge_short(pieces: List[str], threshold: int = MIN_PIECE_CHARS) -> List[str]:
    if len(pieces) < 2:
        return pieces
    merged, current = [], ""
    for piece in pieces:
        current += piece
        if len(current) >= threshold:
            merged.append(current)
            current = ""
    if current:
        if merged:
            merged[-1] += current
        else:
            merged.append(current)
    return merged


def _first_phrase(text: str) -> str:
    return re.split("[" + re.escape("".join(sorted(STOPS))) + "]", text)[0].strip()


def segments(text: str, method: str = DEFAULT_METHOD, language: str = "en") -> List[str]:
    """The pieces of `text` to synthesise one by one (see the module docstring); [] for a text
    with nothing to say. `method` is one of METHODS (checked by the caller's settings)."""
    stop = "." if language == "en" else "\u3002"
    text = _REPEATED_MARKS_RE.sub(r"\1", text).strip("\n")
    if not text:
        return []
    if text[0] not in STOPS and len(_first_phrase(text)) < 4:
        text = stop + text
    text = METHODS[method](text)
    while "\n\n" in text:
        text = text.replace("\n\n", "\n")
    pieces = [p for p in text.split("\n") if p not in ("", " ")]
    result = []
    for piece in _merge_short(pieces):
        if not piece.strip() or not re.sub(r"\W+", "", piece):
            continue
        if piece[-1] not in STOPS:
            piece += stop
        result.extend(split_long(piece) if len(piece) > MAX_PIECE_CHARS else [piece])
    return result
