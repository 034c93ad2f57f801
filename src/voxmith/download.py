"""Download one large file safely: resumable, verified, atomic, never hanging.

The bytes are streamed to `<dest>.part`. If that file is already there (an earlier run was cut
off), the download resumes with an HTTP Range request; a server that ignores the range (answers
200 instead of 206) makes us start over. When the transfer is complete the size and the sha256
are checked (a known hash, or the one the server declares: Hugging Face returns the sha256 of LFS
files in `X-Linked-ETag`/`ETag`), and only then is the file renamed into place, so a file at
`dest` is always whole. A file that fails verification is deleted, never kept.

Every failure a user can act on (offline, HTTP errors, corrupt data, a full disk) is raised as a
`VoxmithError` with a message that says what to do. UI-free: progress goes to a plain callback.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterable, Iterator, List, Mapping, Optional, Tuple
from urllib.parse import urlparse

import requests

from voxmith.errors import VoxmithError
from voxmith.progress import ProgressCallback, report

try:  # POSIX only: stops two processes from writing the same .part at once
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

CONNECT_TIMEOUT_S = 15.0
READ_TIMEOUT_S = 60.0  # the longest silence tolerated mid-transfer
CHUNK_BYTES = 1 << 16  # what a cut connection can lose of the transfer
REPORT_EVERY_BYTES = 1 << 20  # progress events are sent this often, not per chunk
DEFAULT_ATTEMPTS = 3  # a cut connection is resumed this many times before giving up
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(VoxmithError):
    """A file that could not be downloaded or failed verification."""


@dataclass(frozen=True)
class _Transfer:
    """What the server said about the bytes it is about to send."""

    response: requests.Response
    resumed_from: int  # bytes already in the .part file that the server continues from
    total_size: Optional[int]  # size of the whole file, when the server says it
    declared_sha256: Optional[str]


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, as huggingface_hub resolves it ($HF_HUB_CACHE, $HF_HOME/hub,
    $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub): engines find files users already have."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "huggingface" / "hub"


def search_folders(candidates: Iterable[Tuple[Optional[str | os.PathLike], str]]) -> List[Tuple[Path, str]]:
    """(folder, label) pairs in order, without the unset ones and without repeats (the first label wins)."""
    seen, result = set(), []
    for folder, label in candidates:
        if not folder:
            continue
        path = Path(folder).expanduser()
        if path not in seen:
            seen.add(path)
            result.append((path, label))
    return result


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def download_file(url: str, dest: str | os.PathLike, *, expected_size: Optional[int] = None,
                  expected_sha256: Optional[str] = None, progress: Optional[ProgressCallback] = None,
                  stage: Optional[str] = None, headers: Optional[Mapping[str, str]] = None,
                  offline_hint: str = "", timeout: Tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                  attempts: int = DEFAULT_ATTEMPTS) -> Path:
    """Download `url` to `dest` (resuming a leftover `<dest>.part`) and return `dest`.

    `offline_hint` is appended to the "you seem to be offline" message (e.g. where to put the file
    by hand). A connection cut mid-transfer is resumed up to `attempts` times in all.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _disk_error(err, part_path(dest)) from None
    return _download_with_retries(url, dest, expected_size, expected_sha256, progress,
                                  stage or f"downloading {dest.name}", dict(headers or {}),
                                  offline_hint, timeout, attempts)


def _download_with_retries(url, dest, expected_size, expected_sha256, progress, stage, headers,
                           offline_hint, timeout, attempts) -> Path:
    for attempt in range(1, max(1, attempts) + 1):
        try:
            return _download_once(url, dest, expected_size, expected_sha256, progress, stage,
                                  headers, offline_hint, timeout)
        except _ConnectionCut as cut:
            if attempt >= attempts:
                raise DownloadError(f"The download of {dest.name} from {_host(url)} kept being "
                                    f"interrupted ({cut}). Run the command again: it resumes from "
                                    f"the {_size_text(_existing_size(part_path(dest)))} already "
                                    f"saved in {part_path(dest)}.") from None
    raise AssertionError("unreachable")


class _ConnectionCut(Exception):
    """The transfer stopped early; the .part file holds what arrived and can be resumed."""


def _download_once(url, dest, expected_size, expected_sha256, progress, stage, headers, offline_hint,
                   timeout) -> Path:
    part = part_path(dest)
    with _locked_part_file(part) as part_file:
        transfer = _open_transfer(url, part_file, headers, offline_hint, timeout)
        with transfer.response:
            _check_announced_size(part, expected_size, transfer.total_size, url)
            total = expected_size or transfer.total_size
            _check_free_space(part, total, transfer.resumed_from)
            _start_part_file(part_file, transfer.resumed_from)
            digest = _hash_existing(part, transfer.resumed_from)
            done = _stream_body(transfer, part_file, digest, progress, stage, total, url, part)
        part_file.flush()
        os.fsync(part_file.fileno())
        _verify(part, done, total, expected_sha256 or transfer.declared_sha256, digest.hexdigest(), url)
        os.replace(part, dest)
    return dest


@contextlib.contextmanager
def _locked_part_file(part: Path) -> Iterator[IO[bytes]]:
    """Open (creating, never truncating) the .part file, holding an exclusive lock on it. If the
    work fails before a single byte is saved, the empty file is removed: nothing to resume."""
    try:
        f = open(os.open(part, os.O_RDWR | os.O_CREAT, 0o644), "r+b")
    except OSError as err:
        raise _disk_error(err, part) from None
    with f:
        _lock(f, part)
        try:
            yield f
        except BaseException:
            if os.fstat(f.fileno()).st_size == 0:
                part.unlink(missing_ok=True)
            raise


def _lock(f: IO[bytes], part: Path) -> None:
    if fcntl is None:
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DownloadError(f"Another voxmith process is already downloading {part.name[:-5]} "
                            f"into {part.parent}; wait for it to finish.") from None


def _open_transfer(url, part_file, headers, offline_hint, timeout) -> _Transfer:
    """Send the GET (with a Range header when resuming) and make sense of the answer."""
    have = os.fstat(part_file.fileno()).st_size
    headers = {**headers, "Accept-Encoding": "identity"}  # byte ranges and sizes of the raw file
    if have:
        headers = {**headers, "Range": f"bytes={have}-"}
    response = _get(url, headers, offline_hint, timeout)
    if response.status_code == 416 and have:
        # Our .part is not a prefix the server can continue (already whole, or from another
        # version of the file): throw it away and ask for everything.
        response.close()
        part_file.truncate(0)
        return _open_transfer(url, part_file, {k: v for k, v in headers.items() if k != "Range"},
                              offline_hint, timeout)
    _raise_for_status(response, url)
    resumed_from = have if response.status_code == 206 and _range_start(response) == have else 0
    if response.status_code == 206 and resumed_from == 0 and have:
        response.close()  # a 206 for some other range than the one we asked for: start over
        part_file.truncate(0)
        return _open_transfer(url, part_file, {k: v for k, v in headers.items() if k != "Range"},
                              offline_hint, timeout)
    return _Transfer(response, resumed_from, _total_size(response, resumed_from), _declared_sha256(response))


def _get(url, headers, offline_hint, timeout) -> requests.Response:
    try:
        return requests.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True)
    except requests.exceptions.ConnectTimeout:
        raise DownloadError(_offline_message(url, "the connection timed out", offline_hint)) from None
    except requests.exceptions.ConnectionError as err:
        raise DownloadError(_offline_message(url, _connection_reason(err), offline_hint)) from None
    except requests.exceptions.Timeout:
        raise DownloadError(f"{_host(url)} accepted the connection but sent nothing for "
                            f"{timeout[1]:.0f} s. Try again later.") from None
    except requests.exceptions.RequestException as err:
        raise DownloadError(f"Cannot download {url}: {err}") from None


def _offline_message(url: str, reason: str, hint: str) -> str:
    message = f"cannot reach {_host(url)} ({reason}): you seem to be offline"
    return f"{message}; {hint}" if hint else f"{message}."


def _connection_reason(err: Exception) -> str:
    text = str(err)
    if any(s in text for s in ("Name or service not known", "NameResolutionError", "getaddrinfo",
                               "nodename nor servname", "Temporary failure in name resolution")):
        return "its name does not resolve"
    if "Connection refused" in text or "ECONNREFUSED" in text:
        return "connection refused"
    if "Network is unreachable" in text:
        return "network unreachable"
    return "no connection"


def _raise_for_status(response: requests.Response, url: str) -> None:
    status = response.status_code
    if status in (200, 206):
        return
    response.close()
    host = _host(url)
    if status == 404:
        raise DownloadError(f"{url} does not exist (HTTP 404 from {host}). The file name or revision "
                            "may be wrong, or the file was moved.")
    if status in (401, 403):
        raise DownloadError(f"{host} refused access to {url} (HTTP {status}). If the repository "
                            "needs a login, set HF_TOKEN to a Hugging Face access token.")
    if status == 429:
        raise DownloadError(f"{host} says there were too many requests (HTTP 429). Wait a few "
                            "minutes and try again.")
    if status >= 500:
        raise DownloadError(f"{host} had a server error (HTTP {status}) while sending {url}. "
                            "This is usually temporary: try again later.")
    raise DownloadError(f"Unexpected answer HTTP {status} from {host} for {url}.")


def _range_start(response: requests.Response) -> Optional[int]:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _total_size(response: requests.Response, resumed_from: int) -> Optional[int]:
    """The whole file's size: Content-Range's '/N', else Content-Length (+ what we had), else
    Hugging Face's X-Linked-Size on the redirect."""
    match = re.match(r"bytes \d+-\d+/(\d+)", response.headers.get("Content-Range", ""))
    if match:
        return int(match.group(1))
    if "Content-Encoding" not in response.headers and response.headers.get("Content-Length", "").isdigit():
        return resumed_from + int(response.headers["Content-Length"])
    for hop in [*response.history, response]:
        if hop.headers.get("X-Linked-Size", "").isdigit():
            return int(hop.headers["X-Linked-Size"])
    return None


def _declared_sha256(response: requests.Response) -> Optional[str]:
    """The sha256 a Hugging Face server declares for an LFS file, from any hop of the redirects.
    Only a 64-hex value counts: other ETags (git blob sha1, S3 md5) are not sha256 hashes."""
    hops = [*response.history, response]
    for header in ("X-Linked-ETag", "ETag"):
        for hop in hops:
            value = hop.headers.get(header, "").strip()
            value = value[2:] if value.startswith("W/") else value
            value = value.strip('"').lower()
            if _SHA256_HEX.match(value):
                return value
    return None


def _start_part_file(part_file: IO[bytes], resumed_from: int) -> None:
    part_file.truncate(resumed_from)  # a 200 answer means start over from byte 0
    part_file.seek(resumed_from)


def _hash_existing(part: Path, length: int) -> "hashlib._Hash":
    digest = hashlib.sha256()
    with open(part, "rb") as f:
        remaining = length
        while remaining > 0:
            block = f.read(min(CHUNK_BYTES, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


def _stream_body(transfer: _Transfer, part_file, digest, progress, stage, total, url, part) -> int:
    """Append the body to the .part file; return the bytes it now holds."""
    done = transfer.resumed_from
    report(progress, stage, done, total, _size_text(done))
    try:
        for chunk in transfer.response.iter_content(chunk_size=CHUNK_BYTES):
            _write(part_file, chunk, part)
            digest.update(chunk)
            reported_at = done // REPORT_EVERY_BYTES
            done += len(chunk)
            if done // REPORT_EVERY_BYTES != reported_at or done == total:
                report(progress, stage, done, total, _progress_text(done, total))
    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.Timeout) as err:
        part_file.flush()
        raise _ConnectionCut(f"connection lost after {_size_text(done)}: {type(err).__name__}") from None
    if total is not None and done < total:
        part_file.flush()
        raise _ConnectionCut(f"connection closed after {_size_text(done)} of {_size_text(total)}")
    return done


def _write(part_file, chunk: bytes, part: Path) -> None:
    try:
        part_file.write(chunk)
    except OSError as err:
        raise _disk_error(err, part) from None


def _verify(part: Path, size: int, expected_size: Optional[int], expected_sha256: Optional[str],
            actual_sha256: str, url: str) -> None:
    if expected_size is not None and size != expected_size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"The download of {part.name[:-5]} has the wrong size ({size} bytes, "
                            f"expected {expected_size}); the damaged file was deleted. Try again.")
    if expected_sha256 and actual_sha256 != expected_sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"The download of {part.name[:-5]} from {_host(url)} is corrupt (sha256 "
                            f"{actual_sha256[:12]}..., expected {expected_sha256[:12]}...); the "
                            "damaged file was deleted. Try again; if it keeps happening the "
                            "source or a proxy on the way is serving bad data.")


def _check_announced_size(part: Path, expected: Optional[int], announced: Optional[int], url: str) -> None:
    if expected is not None and announced is not None and expected != announced:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{_host(url)} offers {part.name[:-5]} with {announced} bytes, but "
                            f"{expected} bytes were expected: the file at {url} is not the one "
                            "voxmith knows. Nothing was downloaded.")


def _check_free_space(part: Path, total: Optional[int], have: int) -> None:
    if total is None:
        return
    needed = total - have
    free = free_bytes(part.parent)
    if free is not None and needed > free:
        raise DownloadError(f"Not enough disk space for {part.name[:-5]}: it needs "
                            f"{_size_text(needed)} more but {part.parent} has only "
                            f"{_size_text(free)} free. Free some space or choose another folder.")


def free_bytes(folder: Path) -> Optional[int]:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _disk_error(err: OSError, part: Path) -> DownloadError:
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return DownloadError(f"The disk is full while saving {part.name[:-5]} in {part.parent}. Free "
                             f"some space and run the command again: the download resumes from "
                             f"{part}.")
    return DownloadError(f"Cannot write {part}: {err.strerror or err}. Choose a writable folder.")


def _existing_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _host(url: str) -> str:
    return urlparse(url).hostname or url


def _size_text(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    if n >= 1e3:
        return f"{n / 1e3:.0f} kB"
    return f"{n} B"


def _progress_text(done: int, total: Optional[int]) -> str:
    return f"{_size_text(done)} / {_size_text(total)}" if total else _size_text(done)


size_text = _size_text  # shared with the shells for "~4.3 GB" estimates
