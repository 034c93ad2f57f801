"""Reading text files whose encoding nobody told us.

Most files are UTF-8, but text saved on Windows is often Windows-1252 (or Latin-1), and Notepad's
"Unicode" is UTF-16 with a byte-order mark. A byte-order mark decides; otherwise strict UTF-8 is
tried first (it almost never decodes other encodings by accident), then Windows-1252, then Latin-1,
which decodes any bytes. The caller learns which was used, so it can say so.
"""

from __future__ import annotations

import codecs
from typing import Tuple

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


def describe_encoding(encoding: str) -> str:
    return {"cp1252": "Windows-1252", "latin-1": "Latin-1 (ISO-8859-1)", "utf-8-sig": "UTF-8",
            "utf-16": "UTF-16", "utf-32": "UTF-32"}.get(encoding, encoding.upper())
