"""Recordings uploaded to `POST /voxmith/convert` (and books to `POST /voxmith/books`), kept in the
workspace's uploads/ folder as `<content hash>/<file name as uploaded>`: the result's sidecar points
at the upload (so `reproduce` works), the same recording uploaded twice is stored once, and the
result is named after the client's file, not the hash.

A request that fails keeps nothing new, but identical uploads share one file: the file is removed
only when the request that stored it failed, no other request of this server is converting it,
and none has made a result from it (a book job holds its upload until the job ends, and it counts
as a result once the book's folder was started). The bookkeeping lives in the event loop's thread (every method
runs there, between awaits), so it needs no lock; it covers one server process.

Names that differ only in case are one file on a case-insensitive file system (macOS, Windows): an
upload whose name matches a kept file of the same content but for case reuses that file, under its
spelling, and the bookkeeping is keyed by the path's case-folded form, so one client's cleanup
never deletes a file another's request is using, whatever the file system.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Dict, Optional, Set

from fastapi import UploadFile

from voxmith.serve.errors import ApiError

CHUNK_BYTES = 1 << 20
HASH_CHARS = 16  # of the sha256, naming the upload's folder


class ConvertUploads:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._users: Counter = Counter()  # _key(path) -> requests using it now
        # _key(path) -> the paths stored by a request of this server under that key, no result made from them yet
        self._unclaimed: Dict[str, Set[Path]] = {}

    async def keep(self, upload: UploadFile, max_bytes: Optional[int] = None, what: str = "recording") -> Path:
        """The upload's kept path (stored now, or the identical one already there), marked in use
        until `release`. An empty upload is refused (ApiError 400), and one over `max_bytes` (413);
        `what` names it in those messages (and is the form field's name)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = upload_name(upload.filename, "recording.wav")
        digest, size = hashlib.sha256(), 0
        handle, partial = tempfile.mkstemp(dir=self.folder, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := await upload.read(CHUNK_BYTES):
                    digest.update(chunk)
                    size += out.write(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise ApiError(413, f"The uploaded {what} is larger than the server's limit of "
                                            f"{max_bytes // 2 ** 20} MB.", what)
            if not size:
                raise ApiError(400, f"The uploaded {what} is empty.", what)
            kept = _same_but_for_case(self.folder / digest.hexdigest()[:HASH_CHARS] / name)
            if kept.exists():
                os.unlink(partial)
            else:
                kept.parent.mkdir(exist_ok=True)
                os.replace(partial, kept)
                self._unclaimed.setdefault(_key(kept), set()).add(kept)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        self._users[_key(kept)] += 1  # no await since the exists() check: no release can come between
        return kept

    def release(self, kept: Path, made_result: bool) -> None:
        """This request is done with `kept`; removes it if nobody needs it (see the module docstring)."""
        key = _key(kept)
        self._users[key] -= 1
        if made_result:  # every spelling: on a case-insensitive file system they are the result's file
            self._unclaimed.pop(key, None)
        if self._users[key] > 0:
            return
        del self._users[key]
        for path in self._unclaimed.pop(key, ()):
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # the hash folder, unless the same content came under another name
            except OSError:
                pass


# File names are at most 255 bytes on common file systems; a client's name is cut well below that.
MAX_NAME_BYTES = 200


def upload_name(filename: Optional[str], default: str) -> str:
    """A file name to store a client's upload under: its base name (any folders dropped), without
    control characters (a NUL byte cannot be in a path) or leading dots, the stem cut to
    MAX_NAME_BYTES of UTF-8 keeping the extension; `default` when nothing is left."""
    base = Path((filename or "").replace("\\", "/")).name
    base = "".join(c for c in base if unicodedata.category(c) != "Cc").lstrip(".")
    stem, dot, ext = base.rpartition(".")
    if not dot or len(ext.encode()) > 16:
        stem, dot, ext = base, "", ""
    room = MAX_NAME_BYTES - len((dot + ext).encode())
    stem = stem.encode()[:room].decode(errors="ignore").rstrip()
    return f"{stem}{dot}{ext}" if stem else default


def _key(path: Path) -> str:
    """What the bookkeeping knows a kept file by: the same for names that differ only in case."""
    return os.path.normcase(str(path)).casefold()


def _same_but_for_case(path: Path) -> Path:
    """`path`, or the file already kept in its folder under a name that differs only in case."""
    try:
        return next((p for p in path.parent.iterdir() if p.name.casefold() == path.name.casefold()), path)
    except OSError:  # no folder yet
        return path


__all__ = ["ConvertUploads", "upload_name"]
