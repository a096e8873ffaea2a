"""Where a file comes from: the one parser of source strings (stdlib only).

``mlnb fetch`` and the workflow (``workflow/rules/common.smk``, at DAG build)
both classify sources here, so they never disagree. A source is an ``http(s)://``
URL, ``gdrive://FILE_ID`` (Google Drive), a ``file://`` URL or a plain local path
(absolute, or relative to the working directory). Schemes are case-insensitive;
any other scheme is refused.
"""

from __future__ import annotations

import re
import urllib.parse
import urllib.request
from dataclasses import dataclass

from mlnb.errors import ConfigError

#: Source kinds: "http" and "gdrive" are downloads, "local" is a file on this machine.
REMOTE_KINDS = frozenset({"http", "gdrive"})

_DRIVE_ID = re.compile(r"[A-Za-z0-9_-]{10,}")


@dataclass(frozen=True)
class Source:
    text: str  # as the caller wrote it
    kind: str  # "http", "gdrive" or "local"
    target: str  # the URL, the Drive file id, or the filesystem path

    @property
    def is_remote(self) -> bool:
        return self.kind in REMOTE_KINDS


def parse_source(text: str, origin: str = "source") -> Source:
    """Classify a source string; raise ConfigError (naming ``origin``) for one that cannot be fetched."""
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower() if separator else ""
    if scheme in ("http", "https"):
        if not urllib.parse.urlsplit(text).netloc:
            raise ConfigError(f"{origin} {text!r}: the URL has no host")
        return Source(text, "http", text)
    if scheme == "gdrive":
        if not _DRIVE_ID.fullmatch(rest):
            raise ConfigError(f"{origin} {text!r}: expected gdrive://FILE_ID (letters, digits, '-' and '_')")
        return Source(text, "gdrive", rest)
    if scheme == "file":
        parsed = urllib.parse.urlsplit(text)
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"{origin} {text!r}: only local file:// URLs are supported")
        return Source(text, "local", urllib.request.url2pathname(parsed.path))
    if scheme:
        raise ConfigError(f"{origin} {text!r}: unsupported scheme {scheme}:// "
                          "(use http(s)://, gdrive://FILE_ID, file:// or a path)")
    return Source(text, "local", text)


def is_remote(text: str) -> bool:
    """Whether ``text`` is a download (http(s):// or gdrive://) rather than a local file."""
    return parse_source(text).is_remote
