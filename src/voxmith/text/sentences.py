"""Split long text into sentences an engine can say one at a time.

Sentence ends are . ! ? (and line breaks between paragraphs); a sentence longer than
`max_chars` is cut further at ; : , and finally between words, so no piece is too long for an
engine's context.
"""

from __future__ import annotations

import re
from typing import List

from voxmith.text.normalize import ABBREVIATIONS

_ABBREV_END = re.compile(r"\b(" + "|".join(ABBREVIATIONS) + r"|e\.g|i\.e|[A-Z])\.$", re.IGNORECASE)


def _split_long(sentence: str, max_chars: int) -> List[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    for separator in (r"(?<=[;:])\s+", r"(?<=,)\s+", r"\s+"):
        parts = re.split(separator, sentence)
        if len(parts) > 1:
            break
    pieces, current = [], ""
    for part in parts:
        joined = f"{current} {part}".strip()
        if current and len(joined) > max_chars:
            pieces.append(current)
            current = part
        else:
            current = joined
    pieces.append(current)
    return [p for piece in pieces for p in _split_long(piece, max_chars)] if len(pieces) > 1 else [sentence[:max_chars]]


def split_paragraphs(text: str, max_chars: int = 300) -> List[List[str]]:
    """Paragraphs (separated by blank lines), each a list of sentences of at most `max_chars`."""
    paragraphs: List[List[str]] = []
    for paragraph in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        paragraph = re.sub(r"\s+", " ", paragraph).strip()
        if not paragraph:
            continue
        sentences, current = [], ""
        for chunk in re.split(r"(?<=[.!?])\s+", paragraph):
            current = f"{current} {chunk}".strip()
            if _ABBREV_END.search(current):  # "Dr. Smith": not a sentence end
                continue
            sentences.append(current)
            current = ""
        if current:
            sentences.append(current)
        paragraphs.append([piece for s in sentences for piece in _split_long(s, max_chars)])
    return paragraphs


def split_sentences(text: str, max_chars: int = 300) -> List[str]:
    return [s for paragraph in split_paragraphs(text, max_chars) for s in paragraph]
