"""Create the MLflow store and experiment once, before jobs fan out (``mlnb init-tracking``)."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mlnb import tracking
from mlnb.errors import ConfigError
from mlnb.io import atomic_path

T = TypeVar("T")


def init_tracking(tracking_uri: str, experiment: str, timeout: float, out: Path) -> str:
    """Create ``experiment`` (and a SQLite store) at ``tracking_uri`` ('default': SQLite under results/mlflow),
    waiting at most ``timeout`` s for a server; record its id in the JSON file ``out`` and return it."""
    if not timeout > 0:
        raise ConfigError(f"--timeout {timeout:g}: must be more than 0 seconds")
    uri = tracking.resolve_uri(tracking_uri)
    experiment_id = within_timeout(uri, timeout, lambda: tracking.create_experiment(uri, experiment))
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps({"tracking_uri": uri, "experiment": experiment,
                                   "experiment_id": experiment_id}, indent=2) + "\n")
    return experiment_id


def within_timeout(uri: str, timeout: float, call: Callable[[], T]) -> T:
    """``call()`` for a tracking server, given up after ``timeout`` s with a one-line error naming ``uri``.

    MLflow's own HTTP retries take minutes against a dead server, so they are
    turned off and every request is limited; the call runs in a daemon thread as
    well, which the process leaves behind if a server trickles bytes forever. A
    local store (SQLite) is never bounded: stopping its migrations half-way would
    corrupt it.
    """
    if not uri.startswith(("http://", "https://")):
        return call()
    import mlflow  # noqa: F401  (seconds of imports, which are not the server's time)

    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, round(timeout)))
    outcome: dict[str, object] = {}

    def attempt() -> None:
        try:
            outcome["value"] = call()
        except Exception as error:  # reported below, in the calling thread
            outcome["error"] = error

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ConfigError(f"MLflow tracking server {uri} did not answer within {timeout:g} s "
                          "(config key mlflow.timeout, --timeout)")
    error = outcome.get("error")
    if isinstance(error, ConfigError):
        raise error
    if error is not None:
        raise ConfigError(f"MLflow tracking server {uri}: {_reason(error)}")
    return outcome["value"]


def _reason(error: BaseException) -> str:
    """The operating system's words (``Connection refused``), else the error's first line."""
    text = str(error)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    if "timed out" in text.lower():
        return "timed out"
    return text.splitlines()[0][:200] if text else type(error).__name__
