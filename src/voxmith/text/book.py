"""A book's text as chapters of sentences, each with the pause that follows it.

Chapters: in Markdown (`.md`), each `#` or `##` heading starts one (the heading is read as the
chapter's first sentence); in plain text, a line such as "Chapter 3", "CHAPTER III. The Storm" or
"Part Two" does; text before the first heading is a chapter of its own ("Opening"). Without headings
the whole text is one chapter. EPUB books arrive here as chapter texts already (studio/book.py).

Pauses: a sentence is followed by `sentence_pause_s`, the last of a paragraph by `paragraph_pause_s`,
the last of a chapter by nothing (chapters are separate files; `chapter_pause_s` is put between
them in the joined book). Explicit pauses in the text override these: `[pause 1.5s]` (or
`[pause 700ms]`) and SSML `<break time="1.5s"/>` (or `time="700ms"`); a pause mark also ends the
sentence before it. Markdown emphasis marks, links and images are reduced to their words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional

from voxmith.errors import VoxmithError
from voxmith.text.sentences import split_sentences

PAUSE_MARK = re.compile(r"\[\s*pause\s+(\d+(?:\.\d+)?)\s*(ms|s)?\s*\]"
                        r"|<break\s+time\s*=\s*[\"'](\d+(?:\.\d+)?)\s*(ms|s)[\"']\s*/?>", re.IGNORECASE)
MAX_PAUSE_S = 30.0
_CHAPTER_LINE = re.compile(r"^\s*((chapter|part|book)\s+([0-9]+|[ivxlcdm]+|[a-z]+)\b.*)$", re.IGNORECASE)
_MD_HEADING = re.compile(r"^\s{0,3}(#{1,2})\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class PauseSettings:
    sentence_pause_s: float = 0.35
    paragraph_pause_s: float = 0.8
    chapter_pause_s: float = 2.0  # between chapters in the joined book

    def validate(self) -> None:
        for kind in ("sentence", "paragraph", "chapter"):
            value = getattr(self, f"{kind}_pause_s")
            if not 0.0 <= value <= MAX_PAUSE_S:  # said with the option's name (the API's field is alike)
                raise VoxmithError(f"The {kind} pause (--{kind}-pause) must be between 0 and {MAX_PAUSE_S:g} seconds, "
                                   f"got {value:g}.")


@dataclass
class BookSentence:
    id: str  # "c02-s0014": chapter 2, its 14th sentence
    text: str
    pause_after_s: float
    # A pause mark cut the sentence after this piece ("He waited [pause 1s] and waited."): it goes on
    # in the next one, with which it is judged as one sentence (studio/fragments.py).
    continues: bool = False


@dataclass
class Chapter:
    number: int
    title: str
    sentences: List[BookSentence] = field(default_factory=list)


def _pause_seconds(match: re.Match) -> float:
    value, unit = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    seconds = float(value) / 1000 if (unit or "s").lower() == "ms" else float(value)
    if seconds > MAX_PAUSE_S:
        raise VoxmithError(f"The pause '{match.group(0)}' is longer than {MAX_PAUSE_S:g} s; is it a typo?")
    return seconds


def _ends_sentence(text: str) -> bool:
    """Whether `text` (the words before a pause mark) ends with a sentence's final punctuation."""
    return bool(re.search(r"[.!?\u2026][\"'\u201d\u2019)\]]*\s*$", text))


def _plain_markdown(text: str) -> str:
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text)  # images
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)  # links: their words
    text = re.sub(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1", r"\2", text)  # emphasis and code
    return re.sub(r"^\s{0,3}(>|[-*+]|\d+\.)\s+", "", text, flags=re.MULTILINE)  # quotes and list marks


def split_chapters(text: str, markdown: bool) -> List[tuple[str, str]]:
    """(title, body) of each chapter, in order."""
    chapters: List[tuple[str, List[str]]] = []
    current_title, current = "Opening", []
    for line in text.replace("\r\n", "\n").split("\n"):
        heading = _MD_HEADING.match(line) if markdown else None
        title = heading.group(2).strip() if heading else None
        if title is None and not markdown:
            plain = _CHAPTER_LINE.match(line)
            title = plain.group(1).strip() if plain and len(line.strip()) <= 80 else None
        if title is not None:
            if "".join(current).strip():
                chapters.append((current_title, current))
            current_title, current = title, []
            continue
        current.append(line)
    if "".join(current).strip() or not chapters:
        chapters.append((current_title, current))
    return [(title, "\n".join(lines)) for title, lines in chapters]


def chapter_sentences(number: int, title: Optional[str], body: str, pauses: PauseSettings,
                      read_title: bool = True) -> Chapter:
    """The chapter's sentences with their pauses (the title read first, as its own paragraph)."""
    chapter = Chapter(number, title or f"Chapter {number}")
    blocks = re.split(r"\n\s*\n", body.replace("\r\n", "\n"))
    if read_title and title and title != "Opening":
        blocks.insert(0, title if title.rstrip()[-1:] in ".!?:" else f"{title}.")
    for block in blocks:
        segments, position = [], 0  # (text, the explicit pause after it or None)
        for match in PAUSE_MARK.finditer(block):
            segments.append((block[position:match.start()], _pause_seconds(match)))
            position = match.end()
        segments.append((block[position:], None))
        first = len(chapter.sentences)
        explicit_last = False
        for text, pause in segments:
            for sentence in split_sentences(text):
                if any(ch.isalnum() for ch in sentence):
                    chapter.sentences.append(BookSentence(f"c{number:02d}-s{len(chapter.sentences) + 1:04d}",
                                                          sentence, pauses.sentence_pause_s))
                    explicit_last = False
            if pause is not None and chapter.sentences:
                chapter.sentences[-1].pause_after_s = pause
                chapter.sentences[-1].continues = len(chapter.sentences) > first and not _ends_sentence(text)
                explicit_last = True
        if len(chapter.sentences) > first:
            chapter.sentences[-1].continues = False  # a paragraph's end ends its sentence, pause or not
            if not explicit_last:
                chapter.sentences[-1].pause_after_s = pauses.paragraph_pause_s
    if chapter.sentences:
        chapter.sentences[-1].pause_after_s = 0.0
    return chapter


def parse_book(text: str, markdown: bool, pauses: PauseSettings) -> List[Chapter]:
    """Chapters of sentences from a plain-text or Markdown book; chapters without words are left out."""
    pauses.validate()
    if markdown:
        text = _plain_markdown(text)
    chapters = []
    for title, body in split_chapters(text, markdown):
        chapter = chapter_sentences(len(chapters) + 1, title, body, pauses)
        if chapter.sentences:
            chapters.append(chapter)
    if not chapters:
        raise VoxmithError("The book has no words to read.")
    return chapters
