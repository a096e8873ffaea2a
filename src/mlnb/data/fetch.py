"""Fetch one file from a list of sources, verify its MD5, and write it atomically.

A source is an ``http(s)://`` URL, ``gdrive://FILE_ID`` (Google Drive, through
gdown), a ``file://`` URL or a plain local path (copied). Each source gets
``1 + retries`` attempts with exponential back-off before the next source (a
mirror) is tried. An HTTP transfer cut mid-file continues from
the bytes already received (``Range``, guarded by ``If-Range``) when the server
allows it, and restarts from zero when it does not. pooch is not used for HTTP
because its downloader always starts over, which hurts on the 1.3 GB CelebA zip.

The bytes land in a temporary file beside the destination and are renamed to the
final name only after their MD5 matches, so a failed, cut or wrong download never
leaves anything under the final name.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mlnb.data.source import Source, parse_source
from mlnb.errors import ConfigError, DataError
from mlnb.io import atomic_path, file_md5

log = logging.getLogger(__name__)

#: ``FetchResult.source_used`` when a verified file was already in place.
ALREADY_PRESENT = "already present"

CHUNK_SIZE = 1 << 20
_MD5 = re.compile(r"[0-9a-f]{32}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(?:\d+|\*)")


@dataclass(frozen=True)
class FetchResult:
    path: Path
    md5: str
    #: the URL or path the bytes came from, or ALREADY_PRESENT
    source_used: str


class _RetryableError(Exception):
    """This attempt failed, but another attempt at the same source may succeed."""


class _SourceError(Exception):
    """This source cannot supply the file; move on to the next one."""


def normalise_md5(md5: str | None) -> str | None:
    """Lower-case hex digest, or None when no checksum is given ("" counts as none)."""
    if not md5:
        return None
    value = md5.strip().lower().removeprefix("md5:")
    if not _MD5.fullmatch(value):
        raise ConfigError(f"md5 {md5!r} is not 32 hexadecimal digits")
    return value


def fetch(
    url: str,
    dest: str | os.PathLike,
    md5: str | None = None,
    mirrors: Sequence[str] = (),
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
    backoff: float = 1.0,
) -> FetchResult:
    """Fetch ``url`` (or the first mirror that works) to ``dest`` and verify its MD5.

    ``retries`` is the number of extra attempts per source after the first;
    attempts wait ``backoff * 2**n`` seconds between them. ``timeout`` bounds the
    connection and every read, in seconds. With ``md5=None`` the file is not
    verified: its MD5 is computed, returned and logged as a warning. A ``dest``
    that already matches ``md5`` is kept and nothing is fetched.
    """
    dest = Path(dest)
    expected = normalise_md5(md5)
    sources = [parse_source(text) for text in (url, *mirrors)]
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    if dest.is_file() and (present := _verified_existing(dest, expected)):
        return present
    failures = []
    for source in sources:
        try:
            result = _fetch_from(source, dest, expected, retries, timeout, progress, backoff)
        except _SourceError as error:
            log.warning("%s: %s", source.text, error)
            failures.append(f"{source.text}: {error}")
            continue
        if expected is None:
            log.warning("%s: no md5 given, so NOT verified; its md5 is %s (from %s)", dest, result.md5, source.text)
        else:
            log.info("%s: md5 %s verified (from %s)", dest, result.md5, source.text)
        return result
    raise DataError(f"{dest}: could not fetch it from any of {len(sources)} source(s): " + "; ".join(failures))


def _verified_existing(dest: Path, expected: str | None) -> FetchResult | None:
    """Return a result for an existing ``dest`` that matches; remove one that does not."""
    if expected is None:
        log.info("%s exists but no md5 is given to verify it; fetching it again", dest)
        return None
    actual = file_md5(dest)
    if actual == expected:
        log.info("%s: already present, md5 %s verified", dest, actual)
        return FetchResult(dest, actual, ALREADY_PRESENT)
    log.warning("%s exists with md5 %s, not the expected %s; removing it and fetching again", dest, actual, expected)
    dest.unlink()
    return None


def _fetch_from(source: Source, dest: Path, expected: str | None, retries: int,
                timeout: float, progress: bool, backoff: float) -> FetchResult:
    with atomic_path(dest) as tmp:
        transfer = TRANSFERS[source.kind](source, tmp, dest.name, timeout, progress)
        try:
            _with_retries(transfer.attempt, retries, backoff, source.text)
        finally:
            transfer.close()
        actual = file_md5(tmp)
        if expected is not None and actual != expected:
            raise _SourceError(f"checksum mismatch for {dest.name}: expected md5 {expected}, got {actual}")
    return FetchResult(dest, actual, source.text)


def _with_retries(attempt: Callable[[], None], retries: int, backoff: float, label: str) -> None:
    for number in range(retries + 1):
        try:
            attempt()
            return
        except _RetryableError as error:
            if number == retries:
                raise _SourceError(f"{error} (gave up after {retries + 1} attempt(s))") from error
            delay = backoff * 2**number
            log.warning("%s: %s; retrying in %.2g s (attempt %d of %d)", label, error, delay, number + 2, retries + 1)
            time.sleep(delay)


class _Transfer:
    """Brings one source's bytes into ``target``; ``attempt`` may be called again after a failure."""

    def __init__(self, source: Source, target: Path, name: str, timeout: float, progress: bool):
        self.source, self.target, self.name = source, target, name
        self.timeout, self.progress = timeout, progress

    def attempt(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Remove anything the transfer left beside ``target``."""


class _HttpTransfer(_Transfer):
    """Stream a URL into ``target``; after a cut, continue from the bytes already there."""

    validator: str | None = None  # strong ETag or Last-Modified of the bytes already in target

    def attempt(self) -> None:
        import requests
        import urllib3

        have = self.target.stat().st_size
        headers = {"Accept-Encoding": "identity"}  # bytes on disk = bytes on the wire
        if have:
            headers["Range"] = f"bytes={have}-"
            if self.validator:
                headers["If-Range"] = self.validator
        try:
            with requests.get(self.source.target, headers=headers, stream=True, timeout=self.timeout) as response:
                start = self._start_offset(response, have)
                self.validator = _validator(response)
                length = response.headers.get("Content-Length", "")
                total = start + int(length) if length.isdigit() else None
                self._write(response, start, total)
                size = self.target.stat().st_size
                if total is not None and size != total:
                    raise _RetryableError(f"connection closed after {size} of {total} bytes")
        except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
            raise _RetryableError(f"{type(error).__name__}: {error}") from error

    def _start_offset(self, response, have: int) -> int:
        """Where this response's body starts in the file: ``have`` if it resumes, else 0."""
        status = response.status_code
        if have and status == 416:
            self.target.write_bytes(b"")
            raise _RetryableError("the server refused to resume (HTTP 416); restarting from zero")
        _raise_for_status(response)
        if status != 206:
            if have:
                log.info("%s: the server sent the whole file again; restarting from zero", self.source.text)
            return 0
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if not have or match is None or int(match.group(1)) != have:
            self.target.write_bytes(b"")
            content_range = response.headers.get("Content-Range")
            raise _RetryableError(f"unexpected partial response (Content-Range {content_range!r}); restarting")
        log.info("%s: resuming at byte %d", self.source.text, have)
        return have

    def _write(self, response, start: int, total: int | None) -> None:
        with open(self.target, "ab" if start else "wb") as out, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=self.name, disable=not self.progress,
        ) as bar:
            for chunk in response.raw.stream(CHUNK_SIZE, decode_content=False):
                out.write(chunk)
                bar.update(len(chunk))


def _raise_for_status(response) -> None:
    status = response.status_code
    if status < 400:
        return
    message = f"HTTP {status} {response.reason}"
    if status in (408, 429) or status >= 500:
        raise _RetryableError(message)
    raise _SourceError(message)


def _validator(response) -> str | None:
    """The value for ``If-Range``: a strong ETag, else Last-Modified (weak ETags are not allowed there)."""
    etag = response.headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return response.headers.get("Last-Modified")


class _DriveTransfer(_Transfer):
    """Download a Google Drive file with gdown, which resumes its own partial file between attempts."""

    def attempt(self) -> None:
        import gdown
        import requests
        from gdown.exceptions import DownloadError, FileURLRetrievalError

        # gdown treats an existing output as already downloaded when resume=True.
        self.target.unlink(missing_ok=True)
        try:
            output = gdown.download(id=self.source.target, output=str(self.target), quiet=not self.progress,
                                    resume=True, timeout=self.timeout)
        except FileURLRetrievalError as error:
            raise _SourceError(f"Google Drive refused the download (not public, or quota exceeded): {error}") from error
        except requests.HTTPError as error:
            if error.response is not None:
                _raise_for_status(error.response)
            raise _SourceError(str(error)) from error
        except (DownloadError, requests.RequestException) as error:
            raise _RetryableError(f"{type(error).__name__}: {error}") from error
        if output is None or not self.target.is_file():
            raise _SourceError("gdown returned no file")
        if _looks_like_html(self.target):
            raise _SourceError("Google Drive sent a web page instead of the file (quota exceeded, or not public)")

    def close(self) -> None:
        # gdown keeps "<output>XXXXXXXX.part" files for resuming; the output name is unique to this fetch.
        for partial in glob.glob(glob.escape(str(self.target)) + "*.part"):
            Path(partial).unlink(missing_ok=True)


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


class _LocalTransfer(_Transfer):
    """Copy a local file into place; it is verified like any download.

    A copy rather than a hard link: Snakemake touches every output after its job,
    and through a hard link that would also change the source's mtime (and the two
    names would share one inode, so editing either would change both).
    """

    def attempt(self) -> None:
        path = Path(self.source.target)
        if not path.is_file():
            raise _SourceError(f"no such file: {path}")
        try:
            shutil.copyfile(path, self.target)
        except OSError as error:
            raise _SourceError(f"cannot copy {path}: {error}") from error


TRANSFERS: dict[str, type[_Transfer]] = {"http": _HttpTransfer, "gdrive": _DriveTransfer, "local": _LocalTransfer}
