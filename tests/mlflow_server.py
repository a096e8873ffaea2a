"""A real ``mlflow server`` on 127.0.0.1 for tests, as the README starts one for a cluster, and the two ways a
server fails: a port that refuses connections and a server that accepts them and never answers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_server(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"mlflow server exited {server.returncode}: {server.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow server at {url} did not answer within {timeout} s")


#: the process group of each running server, by URL (see frozen)
_SERVER_GROUPS: dict[str, int] = {}


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """``mlflow server`` with a SQLite backend and artifacts under ``folder``; its URL."""
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [str(mlflow_cli), "server", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "server-artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, server)
        _SERVER_GROUPS[url] = server.pid
        yield url
    finally:
        _SERVER_GROUPS.pop(url, None)
        os.killpg(server.pid, signal.SIGCONT)  # a frozen server, too, ends on SIGTERM
        os.killpg(server.pid, signal.SIGTERM)  # the server's own session: it and its workers, nothing else
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@contextlib.contextmanager
def refusing_server() -> Iterator[str]:
    """The URL of a port nobody listens on (a server that is down): connections are refused."""
    yield f"http://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def frozen(url: str) -> Iterator[None]:
    """The server at ``url`` (one of :func:`mlflow_server`'s) dies mid-run as a hung host does: stopped (SIGSTOP),
    the kernel still accepts connections and nothing answers them; it goes on after the block."""
    os.killpg(_SERVER_GROUPS[url], signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(_SERVER_GROUPS[url], signal.SIGCONT)


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """The URL of a server that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
