"""Fetch one file from a list of sources, verify its MD5, and write it atomically.

A source is an ``http(s)://`` URL, ``gdrive://FILE_ID`` (Google Drive, through
gdown), a ``file://`` URL or a plain local path (copied). Each source gets
``1 + retries`` attempts with exponential back-off before the next source (a
mirror) is tried. An HTTP transfer cut mid-file continues from
the bytes already received (``Range``, guarded by ``If-Range``) when the server
allows it, and restarts from zero when it does not. pooch is not used for HTTP
because its downloader always starts over, which hurts on the 1.3 GB CelebA zip.

The bytes land in a partial file beside the destination (``.NAME.part``) and are
renamed to the final name only after their MD5 matches, so a failed, cut or wrong
download never leaves anything under the final name, and an existing file under
that name stays until its verified replacement is in place. A download that is
interrupted (retries exhausted, SIGTERM, even SIGKILL) keeps its partial file and a
small record of where it came from (``.NAME.part.json``: the source, the server's
ETag or Last-Modified, the size), so the next run resumes it; bytes from another
source, or from a file the server has since changed, are never spliced on.
A local source must exist, and is never the output itself.
"""

from __future__ import annotations

import glob
import json
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
from mlnb.io import FILE_MODE, atomic_path, check_outputs, file_md5

log = logging.getLogger(__name__)

#: ``FetchResult.source_used`` when a verified file was already in place.
ALREADY_PRESENT = "already present"

CHUNK_SIZE = 1 << 20
_MD5 = re.compile(r"[0-9a-f]{32}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


@dataclass(frozen=True)
class FetchResult:
    path: Path
    md5: str
    #: the URL or path the bytes came from, or ALREADY_PRESENT
    source_used: str


class _RetryableError(Exception):
    """This attempt failed, but another attempt at the same source may succeed."""


class _SourceError(Exception):
    """This source cannot supply the file now; move on to the next one.

    ``transient``: the attempts ran out on errors that may pass (cut connections,
    timeouts), so the bytes received so far are kept for a later run.
    """

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


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
        raise ConfigError(f"retries (--retries) must be >= 0, got {retries}")
    if not timeout > 0:
        raise ConfigError(f"timeout (--timeout) must be > 0 seconds, got {timeout}")
    if dest.is_dir():
        raise ConfigError(f"--out {dest}: is a folder; give the file to write")
    _check_local_sources(sources, dest)
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
    kept = f"; the existing {dest} was left as it was" if dest.is_file() else ""
    raise DataError(f"{dest}: could not fetch it from any of {len(sources)} source(s): "
                    + "; ".join(failures) + kept)


def _check_local_sources(sources: list[Source], dest: Path) -> None:
    """A configured local source must exist, and must not be the output (replacing it would lose it)."""
    for source in sources:
        if not source.is_remote and not Path(source.target).is_file():
            raise DataError(f"{source.text}: configured source file is missing (or not a file)")
    first, *mirrors = sources
    check_outputs({"--url": None if first.is_remote else first.target,
                   "--mirror": [source.target for source in mirrors if not source.is_remote]}, {"--out": dest})


def _verified_existing(dest: Path, expected: str | None) -> FetchResult | None:
    """A result for an existing ``dest`` that matches ``expected``; None (keeping the file) when it does not."""
    if expected is None:
        log.info("%s exists but no md5 is given to verify it; fetching it again", dest)
        return None
    actual = file_md5(dest)
    if actual == expected:
        log.info("%s: already present, md5 %s verified", dest, actual)
        return FetchResult(dest, actual, ALREADY_PRESENT)
    log.warning("%s exists with md5 %s, not the expected %s; fetching it again "
                "(it stays until a verified replacement is in place)", dest, actual, expected)
    return None


class _Partial:
    """The partial download of ``dest`` (``.NAME.part``) and its record (``.NAME.part.json``).

    The record names the source the bytes came from, and for HTTP the validator
    (strong ETag or Last-Modified) and total size the server announced. Names are
    fixed per destination, so a later run finds what an interrupted one left.
    """

    def __init__(self, dest: Path):
        self.data = dest.with_name(f".{dest.name}.part")
        self.record_path = dest.with_name(f".{dest.name}.part.json")
        self.record: dict = {}

    def claim(self, source: Source) -> None:
        """Keep bytes an earlier run left for this very source (and resumable kind); clear anything else."""
        try:
            record = json.loads(self.record_path.read_text())
        except (OSError, ValueError):
            record = {}
        record = record if isinstance(record, dict) else {}
        resumable = source.kind == "gdrive" or (source.kind == "http" and record.get("validator"))
        if record.get("source") == source.text and resumable:
            log.info("%s: resuming the partial download an earlier run left", source.text)
            self.record = record
        else:
            self.clear()
            self.record = {"source": source.text}
        self.save()

    def update(self, **fields) -> None:
        if any(self.record.get(key) != value for key, value in fields.items()):
            self.record.update(fields)
            self.save()

    def save(self) -> None:
        with atomic_path(self.record_path) as tmp:
            tmp.write_text(json.dumps(self.record, sort_keys=True) + "\n")

    def gdown_files(self) -> list[Path]:
        """gdown's own resumable files for ``data``: the name plus 8 random characters and ``.part``."""
        return [Path(name) for name in glob.glob(glob.escape(str(self.data)) + "?" * 8 + ".part")]

    def is_empty(self) -> bool:
        files = [self.data, *self.gdown_files()]
        return not any(path.is_file() and path.stat().st_size for path in files)

    def clear(self) -> None:
        for path in (self.data, self.record_path, *self.gdown_files()):
            path.unlink(missing_ok=True)

    def publish(self, dest: Path) -> None:
        os.chmod(self.data, FILE_MODE)
        os.replace(self.data, dest)
        self.clear()


def _fetch_from(source: Source, dest: Path, expected: str | None, retries: int,
                timeout: float, progress: bool, backoff: float) -> FetchResult:
    partial = _Partial(dest)
    partial.claim(source)
    transfer = TRANSFERS[source.kind](source, partial, dest.name, timeout, progress)
    try:
        _with_retries(transfer.attempt, retries, backoff, source.text)
    except _SourceError as error:
        if not error.transient or partial.is_empty():
            partial.clear()
        raise
    except BaseException:  # stopped (SIGTERM, Ctrl-C): keep the bytes for the next run
        if partial.is_empty():
            partial.clear()
        raise
    if not partial.data.is_file() or partial.data.stat().st_size == 0:
        partial.clear()
        raise _SourceError("it sent an empty file")
    actual = file_md5(partial.data)
    if expected is not None and actual != expected:
        partial.clear()
        raise _SourceError(f"checksum mismatch for {dest.name}: expected md5 {expected}, got {actual}")
    partial.publish(dest)
    return FetchResult(dest, actual, source.text)


def _with_retries(attempt: Callable[[], None], retries: int, backoff: float, label: str) -> None:
    for number in range(retries + 1):
        try:
            attempt()
            return
        except _RetryableError as error:
            if number == retries:
                raise _SourceError(f"{error} (gave up after {retries + 1} attempt(s))", transient=True) from error
            delay = backoff * 2**number
            log.warning("%s: %s; retrying in %.2g s (attempt %d of %d)", label, error, delay, number + 2, retries + 1)
            time.sleep(delay)


class _Transfer:
    """Brings one source's bytes into ``partial.data``; ``attempt`` may be called again after a failure."""

    def __init__(self, source: Source, partial: _Partial, name: str, timeout: float, progress: bool):
        self.source, self.partial, self.target, self.name = source, partial, partial.data, name
        self.timeout, self.progress = timeout, progress

    def attempt(self) -> None:
        raise NotImplementedError


class _HttpTransfer(_Transfer):
    """Stream a URL into ``target``; after a cut, continue from the bytes already there.

    The record holds the validator (strong ETag or Last-Modified) and size of the bytes
    already in target: a resumed request carries ``If-Range``, so a changed file comes whole.
    """

    def attempt(self) -> None:
        import requests
        import urllib3

        have = self.target.stat().st_size if self.target.is_file() else 0
        if have and have == self.partial.record.get("size"):
            # complete, but a run was stopped before publishing it (e.g. while checking its md5)
            log.info("%s: the %d bytes an earlier run received are the whole file", self.source.text, have)
            return
        headers = {"Accept-Encoding": "identity"}  # bytes on disk = bytes on the wire
        validator = self.partial.record.get("validator")
        if have:
            headers["Range"] = f"bytes={have}-"
            if validator:
                headers["If-Range"] = validator
        try:
            with requests.get(self.source.target, headers=headers, stream=True, timeout=self.timeout) as response:
                start = self._start_offset(response, have)
                length = response.headers.get("Content-Length", "")
                total = start + int(length) if length.isdigit() else None
                self.partial.update(validator=_validator(response), size=total)
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
        recorded_size = self.partial.record.get("size")
        if (not have or match is None or int(match.group(1)) != have
                or (recorded_size and match.group(2) not in ("*", str(recorded_size)))):
            self.target.write_bytes(b"")
            content_range = response.headers.get("Content-Range")
            raise _RetryableError(f"unexpected partial response (Content-Range {content_range!r}); restarting")
        log.info("%s: resuming at byte %d", self.source.text, have)
        return have

    def _write(self, response, start: int, total: int | None) -> None:
        """Append what arrives as it arrives (read1, unbuffered), so even a killed run keeps its bytes."""
        with open(self.target, "ab" if start else "wb", buffering=0) as out, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=self.name, disable=not self.progress,
        ) as bar:
            while chunk := response.raw.read1(CHUNK_SIZE, decode_content=False):
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
    """Download a Google Drive file with gdown, which resumes its own partial file between attempts.

    gdown keeps ``<output>XXXXXXXX.part`` beside its output (here ``partial.data``)
    and finds it again in a later run; the record ties those bytes to this file id.
    """

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
