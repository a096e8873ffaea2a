"""Fixtures for the data-stage tests: a real HTTP file server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest


@dataclass
class FileServer:
    """What the test server serves, and what it saw.

    ``files`` maps a path ("/a.bin") to its body. ``status`` forces an error status
    for a path. ``cut_first[path] = n`` makes the first ``n`` requests for that path
    announce the full Content-Length, send half the body and close the connection.
    ``stall[path]`` waits that many seconds before sending the body; ``stall_midway[path]``
    sends half the body, then waits that many seconds before the rest. With
    ``ranges=False`` Range headers are ignored (the whole file is sent with 200).
    ``on_request(path)``, when set, runs as each request arrives (e.g. to change a file).
    """

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    cut_first: dict[str, int] = field(default_factory=dict)
    stall: dict[str, float] = field(default_factory=dict)
    stall_midway: dict[str, float] = field(default_factory=dict)
    ranges: bool = True
    on_request: Callable[[str], None] | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return self.base_url + path

    def requests_for(self, path: str) -> list[str | None]:
        return [range_header for seen, range_header in self.requests if seen == path]


class _Handler(http.server.BaseHTTPRequestHandler):
    state: FileServer  # set on the subclass made for each server

    def log_message(self, format, *args) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        state, path = self.state, self.path.split("?")[0]
        range_header = self.headers.get("Range")
        with state.lock:
            state.requests.append((path, range_header))
            if state.on_request is not None:
                state.on_request(path)
            cut = state.cut_first.get(path, 0) > 0
            if cut:
                state.cut_first[path] -= 1
        if path in state.status:
            self.send_error(state.status[path])
            return
        if path not in state.files:
            self.send_error(404)
            return
        body = state.files[path]
        etag = f'"{hashlib.md5(body).hexdigest()}"'  # noqa: S324
        start = self._range_start(range_header, etag)
        if start is not None and start >= len(body):
            self.send_error(416)
            return
        if start is None:
            self.send_response(200)
            start = 0
        else:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes" if state.ranges else "none")
        self.end_headers()
        time.sleep(state.stall.get(path, 0.0))
        half = len(payload) // 2
        self.wfile.write(payload[:half])
        self.wfile.flush()
        if cut:
            return
        time.sleep(state.stall_midway.get(path, 0.0))
        self.wfile.write(payload[half:])
        self.wfile.flush()

    def _range_start(self, range_header: str | None, etag: str) -> int | None:
        """The first byte asked for, or None to send the whole file."""
        if not (self.state.ranges and range_header):
            return None
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range != etag:
            return None
        match = re.fullmatch(r"bytes=(\d+)-", range_header)
        return int(match.group(1)) if match else None


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request, client_address) -> None:
        """A client that gave up (timeout tests) is expected; don't print its broken pipe."""


@pytest.fixture
def file_server(monkeypatch) -> Iterator[FileServer]:
    """A threaded HTTP server on 127.0.0.1 (port chosen by the OS), stopped after the test."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    state = FileServer()
    handler = type("Handler", (_Handler,), {"state": state})
    server = _QuietServer(("127.0.0.1", 0), handler)
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
