"""``mlnb init-tracking``: create the MLflow store and experiment once, before jobs fan out."""

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
from mlnb.settings import section_schema

T = TypeVar("T")


def configure_parser(parser) -> None:
    default_timeout = section_schema("mlflow")["properties"]["timeout"]["default"]
    parser.add_argument("--tracking-uri", default="default",
                        help="MLflow tracking URI ('default' = SQLite under results/mlflow)")
    parser.add_argument("--experiment", default="mlnb")
    parser.add_argument("--timeout", type=float, default=default_timeout,
                        help=f"seconds to wait for a tracking server (default {default_timeout})")
    parser.add_argument("--out", type=Path, required=True, help="JSON file recording the experiment id")


def run(args) -> int:
    if not args.timeout > 0:
        raise ConfigError(f"--timeout {args.timeout:g}: must be more than 0 seconds")
    uri = tracking.resolve_uri(args.tracking_uri)
    experiment_id = within_timeout(uri, args.timeout, lambda: tracking.create_experiment(uri, args.experiment))
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps({"tracking_uri": uri, "experiment": args.experiment,
                                   "experiment_id": experiment_id}, indent=2) + "\n")
    return 0


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
