"""Create the MLflow store and experiment once, before jobs fan out (``mlnb init-tracking``)."""

from __future__ import annotations

import json
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

    MLflow's own HTTP retries take minutes against a dead server, so every request
    is bounded (:func:`mlnb.tracking.request_bounds`); the call runs in a daemon thread
    as well, which the process leaves behind if a server trickles bytes forever. A
    local store (SQLite) is never bounded: stopping its migrations half-way would
    corrupt it.
    """
    if not uri.startswith(("http://", "https://")):
        return call()
    import mlflow  # noqa: F401  (seconds of imports, which are not the server's time)

    with tracking.request_bounds(timeout):
        return _in_thread(uri, timeout, call)


def _in_thread(uri: str, timeout: float, call: Callable[[], T]) -> T:
    outcome: dict[str, object] = {}

    def attempt() -> None:
        try:
            outcome["value"] = call()
        except Exception as error:  # reported below, in the calling thread
            outcome["error"] = error

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout)
    error = outcome.get("error")
    reason = None if error is None else tracking.failure_reason(error)
    if worker.is_alive() or reason == "timed out":
        raise ConfigError(f"MLflow tracking server {uri} did not answer within {timeout:g} s "
                          "(config key mlflow.timeout, --timeout)")
    if isinstance(error, ConfigError):
        raise error
    if error is not None:
        raise ConfigError(f"MLflow tracking server {uri}: {reason}")
    return outcome["value"]
