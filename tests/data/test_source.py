"""The one source parser: what each source string means, and what it refuses."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlnb.data.source import Source, is_remote, parse_source
from mlnb.errors import ConfigError


@pytest.mark.parametrize(("text", "kind", "target"), [
    ("https://example.org/a.tar", "http", "https://example.org/a.tar"),
    ("HTTPS://example.org/a.tar", "http", "HTTPS://example.org/a.tar"),
    ("Http://example.org/a.tar", "http", "Http://example.org/a.tar"),
    ("gdrive://0B7EVK8r0v71pZjFTYXZWM3FlRnM", "gdrive", "0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
    ("GDRIVE://0B7EVK8r0v71pZjFTYXZWM3FlRnM", "gdrive", "0B7EVK8r0v71pZjFTYXZWM3FlRnM"),
    ("file:///data/a%20b.zip", "local", "/data/a b.zip"),
    ("FILE://localhost/data/a.zip", "local", "/data/a.zip"),
    ("results/data/a.zip", "local", "results/data/a.zip"),
    ("/abs/a:b.zip", "local", "/abs/a:b.zip"),
])
def test_each_kind_of_source(text, kind, target):
    assert parse_source(text) == Source(text, kind, target)
    assert is_remote(text) == (kind in ("http", "gdrive"))


@pytest.mark.parametrize(("text", "problem"), [
    ("ftp://example.org/a", "unsupported scheme ftp://"),
    ("S3://bucket/a", "unsupported scheme s3://"),
    ("gdrive://", "expected gdrive://FILE_ID"),
    ("gdrive://bad id!", "expected gdrive://FILE_ID"),
    ("http:///nohost", "the URL has no host"),
    ("file://otherhost/a", "only local file:// URLs"),
])
def test_unfetchable_sources_name_their_origin(text, problem):
    with pytest.raises(ConfigError) as error:
        parse_source(text, origin="config key data.heart.files.archive.url")
    message = str(error.value)
    assert message.startswith(f"config key data.heart.files.archive.url {text!r}: ")
    assert problem in message and "\n" not in message


def test_is_remote_refuses_what_cannot_be_fetched():
    with pytest.raises(ConfigError, match="unsupported scheme ftp://"):
        is_remote("ftp://example.org/a")


def test_the_parser_imports_nothing_heavy():
    """The Snakefile imports it at DAG build: it must stay stdlib only."""
    code = ("import sys, mlnb.data.source; "
            "print(sorted(m for m in ('numpy', 'requests', 'tqdm', 'mlnb.data.fetch', 'yaml') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
