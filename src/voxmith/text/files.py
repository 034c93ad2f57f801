"""Reading text files whose encoding nobody told us.

Most files are UTF-8, but text saved on Windows is often Windows-1252 (or Latin-1), and Notepad's
"Unicode" is UTF-16 with a byte-order mark. A byte-order mark decides; otherwise strict UTF-8 is
tried first (it almost never decodes other encodings by accident), then Windows-1252, then Latin-1,
which decodes any bytes. The caller learns which was used, so it can say so.
"""

from __future__ import annotations

import codecs
from typing import BinaryIO, Optional, Tuple

from voxmith.errors import VoxmithError

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
FALLBACKS = ("utf-8", "cp1252", "latin-1")


def decode_text(data: bytes) -> Tuple[str, str]:
    """(text, encoding used). Never raises for any bytes."""
    for bom, encoding in _BOMS:  # UTF-32 LE starts with UTF-16 LE's mark, so it is checked first
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError:
                break
    for encoding in FALLBACKS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


# What a binary file given as text most likely is, by its first bytes (for the error message).
_SIGNATURES = ((b"RIFF", "a WAV recording"), (b"fLaC", "a FLAC recording"), (b"ID3", "an MP3 recording"),
               (b"OggS", "an Ogg recording"), (b"PK\x03\x04", "a zip archive (an EPUB must be named .epub)"),
               (b"%PDF", "a PDF document"))


def decode_text_file(data: bytes, name: str) -> Tuple[str, str]:
    """`decode_text`, refusing bytes that are no text at all: Latin-1 decodes anything, so a
    recording given as a text file was read as 2,000 "sentences" of noise until a NUL byte in one
    crashed the engine. Text (in any encoding tried here) never holds NUL characters."""
    text, encoding = decode_text(data)
    if "\x00" in text:
        kind = next((what for magic, what in _SIGNATURES if data.startswith(magic)),
                    "binary data (or UTF-16 text without a byte-order mark)")
        raise VoxmithError(f"'{name}' is not a text file: it looks like {kind}. Give a .txt or .md file "
                           "saved as text (UTF-8 is best).")
    return text, encoding


# A text file bigger than this is not what was meant (War and Peace is 3 MB): a recording, a disk
# image or /dev/zero given by mistake would otherwise be read whole into memory before being refused.
MAX_TEXT_FILE_BYTES = 50 << 20


def read_text_bytes(stream: BinaryIO, name: str, limit: Optional[int] = None) -> bytes:
    """The bytes of a text file (or stdin), refusing one of over `limit` bytes (default
    MAX_TEXT_FILE_BYTES) without reading on."""
    limit = MAX_TEXT_FILE_BYTES if limit is None else limit
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise VoxmithError(f"'{name}' is over {limit >> 20} MB, too big for a text file: is it the file you "
                           "meant? Split a longer text into several files.")
    return data


def describe_encoding(encoding: str) -> str:
    return {"cp1252": "Windows-1252", "latin-1": "Latin-1 (ISO-8859-1)", "utf-8-sig": "UTF-8",
            "utf-16": "UTF-16", "utf-32": "UTF-32"}.get(encoding, encoding.upper())
