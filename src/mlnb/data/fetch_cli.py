"""``mlnb fetch``: download (or copy) one file, verify its MD5, and write it atomically."""

from __future__ import annotations

import logging
from pathlib import Path

from mlnb.data.fetch import fetch

log = logging.getLogger(__name__)


def configure_parser(parser) -> None:
    parser.add_argument("--url", required=True,
                        help="primary source: http(s)://..., gdrive://FILE_ID, file://... or a local path")
    parser.add_argument("--mirror", action="append", default=[], metavar="URL",
                        help="fallback source, tried in order when the ones before fail (repeatable)")
    parser.add_argument("--md5", default=None, help="expected MD5 (hex); omit to skip verification")
    parser.add_argument("--out", type=Path, required=True, help="file to write")
    parser.add_argument("--retries", type=int, default=3, help="extra attempts per source (default 3)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a connection or a read")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args) -> int:
    result = fetch(args.url, args.out, md5=args.md5, mirrors=args.mirror, retries=args.retries,
                   timeout=args.timeout, progress=not args.no_progress)
    log.info("%s: md5 %s, source %s", result.path, result.md5, result.source_used)
    return 0
