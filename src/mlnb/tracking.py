"""The one place that talks to MLflow.

Stage commands take ``--tracking-uri`` and ``--experiment`` (see
:func:`add_tracking_arguments`) and open a run with :func:`tracked_run`. Without a
tracking URI they log nothing, so every stage also runs by hand with no MLflow.

The default store is embedded: SQLite at ``results/mlflow/mlflow.db`` with
artifacts under ``results/mlflow/artifacts``. Creating that store runs database
migrations, so :func:`ensure_experiment` is called once (by ``mlnb init-tracking``)
before jobs fan out; afterwards many jobs may log at once, and every call retries
on SQLite's "database is locked".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import random
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mlnb.errors import ConfigError
from mlnb.io import file_md5

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("results/mlflow")
PROVENANCE_PACKAGES = ("mlnb", "numpy", "torch", "mlflow", "snakemake", "dlib-bin",
                       "opencv-python-headless", "nibabel")

T = TypeVar("T")


def default_tracking_uri(store: Path = DEFAULT_STORE) -> str:
    return f"sqlite:///{(store / 'mlflow.db').resolve()}"


def add_tracking_arguments(parser) -> None:
    group = parser.add_argument_group("MLflow tracking (optional)")
    group.add_argument("--tracking-uri", default=None,
                       help="MLflow tracking URI ('default' = SQLite under results/mlflow); omit to log nothing")
    group.add_argument("--experiment", default="mlnb", help="MLflow experiment name")
    group.add_argument("--run-name", default=None, help="MLflow run name")
    group.add_argument("--config-hash", default=None, help="hash of the resolved pipeline config")
    group.add_argument("--stage-config", type=json.loads, default=None, metavar="JSON",
                       help="the resolved config this stage ran with (logged as config.* params)")
    group.add_argument("--input-file", action="append", default=[], metavar="NAME=PATH",
                       help="an input whose md5 is logged as input_md5.NAME (repeatable)")


def _retry_locked(call: Callable[..., T], *args, attempts: int = 8, **kwargs) -> T:
    """Call ``call``; on SQLite lock contention wait (jittered back-off) and try again."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except Exception as error:  # MLflow wraps SQLAlchemy errors in its own types
            if "locked" not in str(error).lower() or attempt == attempts - 1:
                raise
            # Jitter only spreads retries in time; it never touches results.
            delay = 0.1 * 2**attempt * (1 + random.random())  # noqa: S311
            log.debug("MLflow store locked, retrying in %.2f s", delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def resolve_uri(uri: str | None) -> str | None:
    if uri in (None, ""):
        return None
    return default_tracking_uri() if uri == "default" else uri


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """Create the experiment (and the store) if missing; return its id."""
    import mlflow

    tracking_uri = resolve_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = _retry_locked(client.get_experiment_by_name, name)
    if experiment is not None:
        return experiment.experiment_id
    artifact_location = None
    if tracking_uri.startswith("sqlite:///"):
        db_path = Path(tracking_uri.removeprefix("sqlite:///"))
        artifact_location = (db_path.parent / "artifacts").resolve().as_uri()
    return _retry_locked(client.create_experiment, name, artifact_location=artifact_location)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True, timeout=10, cwd=Path(__file__).parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10,
                               cwd=Path(__file__).parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names: Iterable[str] = PROVENANCE_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def compute_device() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"cpu:{platform.machine()}:{os.cpu_count()} cores"


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings become dotted keys; values become strings MLflow accepts."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            text = json.dumps(value) if isinstance(value, list | tuple) else str(value)
            flat[name] = text[:6000]
    return flat


class Tracker:
    """Logging calls for one run; a Tracker with no run ignores every call."""

    def __init__(self, run_id: str | None = None, client=None):
        self.run_id = run_id
        self._client = client

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import Param

        flat = flatten_params(params)
        items = [Param(k, v) for k, v in flat.items()]
        for start in range(0, len(items), 100):
            _retry_locked(self._client.log_batch, self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self.active:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
        for start in range(0, len(items), 100):
            _retry_locked(self._client.log_batch, self.run_id, metrics=items[start:start + 100])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        _retry_locked(self._client.log_batch, self.run_id, tags=items)

    def log_image(self, image: np.ndarray, name: str) -> None:
        """Log an HxW or HxWxC uint8 array as ``name`` (a .png path inside the run)."""
        if self.active:
            _retry_locked(self._client.log_image, self.run_id, image, artifact_file=name)

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        if self.active:
            _retry_locked(self._client.log_artifact, self.run_id, str(path), folder)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        if self.active:
            _retry_locked(self._client.log_dict, self.run_id, dict(data), name)


@contextlib.contextmanager
def tracked_run(args, run_name: str, params: Mapping[str, Any] | None = None,
                inputs: Mapping[str, str | os.PathLike] | None = None,
                tags: Mapping[str, Any] | None = None) -> Iterator[Tracker]:
    """Open an MLflow run from a command's tracking arguments, with provenance.

    ``inputs`` maps a name to an input file whose md5 is recorded (``input_md5.NAME``).
    The run ends FINISHED, or FAILED when the body raises.
    """
    uri = resolve_uri(getattr(args, "tracking_uri", None))
    params = dict(params if params is not None else _cli_params(args))
    if getattr(args, "stage_config", None):
        params["config"] = args.stage_config
    inputs = {**_named_inputs(getattr(args, "input_file", [])), **(inputs or {})}
    if uri is None:
        yield Tracker()
        return
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment_id = ensure_experiment(uri, args.experiment)
    provenance = {
        "git_commit": git_commit(),
        "config_hash": getattr(args, "config_hash", None) or "none",
        "device": compute_device(),
        "mlnb.stage": run_name,
        **{f"version.{k}": v for k, v in package_versions().items()},
    }
    run = _retry_locked(client.create_run, experiment_id,
                        run_name=getattr(args, "run_name", None) or run_name,
                        tags={**provenance, **(tags or {})})
    tracker = Tracker(run.info.run_id, client)
    try:
        tracker.log_params(params)
        if inputs:
            tracker.log_params({f"input_md5.{k}": file_md5(v) for k, v in inputs.items()})
        yield tracker
    except BaseException:
        _retry_locked(client.set_terminated, run.info.run_id, "FAILED")
        raise
    _retry_locked(client.set_terminated, run.info.run_id, "FINISHED")


def _named_inputs(pairs: Iterable[str]) -> dict[str, str]:
    named = {}
    for pair in pairs:
        name, separator, path = pair.partition("=")
        if not separator or not name or not path:
            raise ConfigError(f"--input-file {pair!r}: expected NAME=PATH")
        named[name] = path
    return named


def _cli_params(args) -> dict[str, Any]:
    skip = {"tracking_uri", "experiment", "run_name", "config_hash", "stage_config", "input_file"}
    return {k: v for k, v in vars(args).items() if k not in skip}
