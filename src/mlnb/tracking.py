"""The one place that talks to MLflow.

Stage commands take ``--tracking-uri`` and ``--experiment`` (see
:func:`add_tracking_arguments`) and open a run with :func:`tracked_run`. Without a
tracking URI they log nothing, so every stage also runs by hand with no MLflow.

The default store is embedded: SQLite at ``results/mlflow/mlflow.db`` with
artifacts under ``results/mlflow/artifacts``. Creating that store runs database
migrations, which race when several processes do it at once, so only
:func:`create_experiment` (``mlnb init-tracking``, run once before jobs fan out)
creates the store and the experiment; jobs look the experiment up with
:func:`experiment_id` and fail with a one-line error when it is missing. Many jobs
may then log at once: every call goes through :func:`retry_locked`.

A SQLite store that cannot be used (locked by another process for longer than
:data:`LOCKED_WAIT_SECONDS`, read-only, on a full disk, not a database, or made by
another MLflow version) is one line naming its file (:class:`TrackingStoreError`,
:func:`store_faults`), raised before a run is created when the store is faulty from the start.

A tracking server is given a bound: every MLflow request ends within the
``--tracking-timeout`` (config key ``mlflow.timeout``), MLflow's own retries included
(:func:`request_bounds`), and a server that does not answer becomes one line
(:class:`TrackingServerError`) instead of minutes of retries and chained tracebacks.

An experiment made by ``init-tracking`` in a SQLite store keeps its artifacts in
the store's folder. The store records that location as an absolute URI, so when
the project folder is moved or copied, the next lookup points the experiment and
its runs at the artifacts beside the store again (:func:`relocate_artifacts`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import hashlib
import itertools
import json
import logging
import math
import os
import platform
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mlnb import job_runs
from mlnb.errors import ConfigError, MlnbError
from mlnb.io import WRITE_FAULTS, file_md5
from mlnb.stopping import deferred_signals, stop_signal_of, stops_outlive_finalizers

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("results/mlflow")
#: Experiment tag naming the artifact folder relative to a SQLite store's folder.
ARTIFACTS_TAG = "mlnb.artifacts_beside_store"
ARTIFACTS_FOLDER = "artifacts"
#: Set by a caller (the Snakemake logger plugin) to nest every stage run under its run.
PARENT_RUN_ENV = "MLNB_PARENT_RUN_ID"
#: Environment variables recorded as ``env.NAME`` tags when set (which GPUs, which Slurm job).
PROVENANCE_ENV = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")
PROVENANCE_PACKAGES = ("mlnb", "numpy", "torch", "mlflow", "snakemake", "dlib-bin",
                       "opencv-python-headless", "nibabel")
MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call
MAX_PARAMS_PER_BATCH = 100
#: Attempts MLflow makes at one request (the first and its retries), together within the timeout.
REQUEST_ATTEMPTS = 3
#: The MLflow run context of a dataset: what the run did with it.
DATASET_CONTEXT_TAG = "mlflow.data.context"
#: How long :func:`retry_locked` waits out a locked SQLite store (jobs logging at once) before giving up:
#: a call that finds it locked is tried again until this many seconds have passed since the first try.
LOCKED_WAIT_SECONDS = 60.0

T = TypeVar("T")


def default_tracking_uri(store: Path = DEFAULT_STORE) -> str:
    return f"sqlite:///{(store / 'mlflow.db').resolve()}"


def mlflow_default(key: str) -> Any:
    """The config schema's default of ``mlflow.KEY`` (read when asked: the logger plugin, which imports this
    module inside Snakemake, loads no more than it needs)."""
    from mlnb.settings import section_schema

    return section_schema("mlflow")["properties"][key]["default"]


@dataclasses.dataclass(frozen=True)
class TrackingOptions:
    """Where a command logs its MLflow run (no ``tracking_uri``: nowhere), as the tracking flags give it."""

    tracking_uri: str | None = None
    experiment: str = "mlnb"
    run_name: str | None = None
    stage_config: Mapping[str, Any] | None = None
    input_file: tuple[str, ...] = ()
    #: The most seconds a request to a tracking server may take; None: the schema's default of mlflow.timeout.
    timeout: float | None = None
    #: Seconds between samples of the machine's load (a training run's system metrics); None: none recorded.
    system_metrics_interval: float | None = None
    #: The command, as the run's ``mlflow.source.name``.
    source: str = "mlnb"

    @classmethod
    def from_args(cls, args) -> TrackingOptions:
        """The options of parsed tracking flags (:func:`add_tracking_arguments`; those added later, as defaults
        when absent)."""
        return cls(tracking_uri=args.tracking_uri, experiment=args.experiment, run_name=args.run_name,
                   stage_config=args.stage_config, input_file=tuple(args.input_file),
                   timeout=getattr(args, "tracking_timeout", None),
                   system_metrics_interval=getattr(args, "system_metrics_interval", None),
                   source=getattr(args, "source", cls.source))


def add_tracking_arguments(parser, system_metrics: bool = False) -> None:
    """The tracking flags; ``system_metrics`` (a training command) adds ``--system-metrics-interval``."""
    parser.set_defaults(source=parser.prog)
    group = parser.add_argument_group("MLflow tracking (optional)")
    group.add_argument("--tracking-uri", default=None,
                       help="MLflow tracking URI ('default' = SQLite under results/mlflow); omit to log nothing")
    group.add_argument("--experiment", default="mlnb",
                       help="MLflow experiment name (created beforehand by mlnb init-tracking)")
    group.add_argument("--run-name", default=None, help="MLflow run name")
    group.add_argument("--stage-config", type=json.loads, default=None, metavar="JSON",
                       help="the resolved config this stage ran with (logged as config.* params, hashed as "
                            "the config_hash tag)")
    group.add_argument("--input-file", action="append", default=[], metavar="NAME=PATH",
                       help="an input logged as an MLflow dataset NAME, its md5 as input_md5.NAME (repeatable)")
    group.add_argument("--tracking-timeout", type=positive_seconds, default=float(mlflow_default("timeout")),
                       metavar="SECONDS", help="the most seconds any request to a tracking server may take, "
                       "retries included (config key mlflow.timeout; default %(default)g)")
    if system_metrics:
        group.add_argument("--system-metrics-interval", type=positive_seconds,
                           default=float(mlflow_default("system_metrics_interval")), metavar="SECONDS",
                           help="seconds between samples of CPU, memory (and GPU) use, logged as the run's "
                                "system metrics (config key mlflow.system_metrics_interval; default %(default)g)")


def positive_seconds(text: str) -> float:
    """A flag's number of seconds: finite and more than 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number of seconds more than 0")
    return value


class TrackingServerError(MlnbError):
    """A tracking server did not answer (refused, timed out, failed) within the bound."""


def request_settings(timeout: float) -> dict[str, str]:
    """MLflow's HTTP settings under which one request, retries included, ends within about ``timeout`` s.

    MLflow reads them from the environment at every request; its defaults (7 retries with
    exponential back-off, 120 s per attempt) take minutes against a dead server. Here up to
    :data:`REQUEST_ATTEMPTS` attempts share the timeout, retried at once (MLflow's timeout is
    whole seconds, at least 1).
    """
    attempts = max(1, min(REQUEST_ATTEMPTS, int(timeout)))
    return {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, int(timeout / attempts))),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(attempts - 1),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"}


@contextlib.contextmanager
def request_bounds(timeout: float, env: dict[str, str] | os._Environ = os.environ) -> Iterator[None]:
    """Within the block, every MLflow request ends within ``timeout`` s (:func:`request_settings`);
    the environment's earlier values are restored after it."""
    settings = request_settings(timeout)
    earlier = {name: env.get(name) for name in settings}
    env.update(settings)
    try:
        yield
    finally:
        for name, value in earlier.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value


def request_failed(error: BaseException) -> bool:
    """True when ``error`` (or one it was raised from) is a request to a server that failed: refused, timed
    out, or answered with errors until the retries ran out. A server's answer (no such run...) is not."""
    import requests

    while error is not None:
        if isinstance(error, requests.exceptions.RequestException):
            return True
        error = error.__cause__ or error.__context__
    return False


def failure_reason(error: BaseException) -> str:
    """The operating system's words (``Connection refused``), else ``timed out``, else the error's first line."""
    text = str(error)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    if "timed out" in text.lower() or "timeout" in text.lower():
        return "timed out"
    return text.splitlines()[0][:200] if text else type(error).__name__


def server_error(uri: str, timeout: float, error: BaseException) -> TrackingServerError:
    return TrackingServerError(f"MLflow tracking server {uri}: {failure_reason(error)} (each request is given up "
                               f"after {timeout:g} s: --tracking-timeout, config key mlflow.timeout)")


class TrackingStoreError(MlnbError):
    """A SQLite tracking store cannot be used (locked, read-only, full, not a database, another schema version),
    or a run's local artifacts cannot be written."""


class StoreLockedTooLong(Exception):
    """:func:`retry_locked` gave up: the store stayed locked for ``seconds``."""

    def __init__(self, seconds: float):
        super().__init__(f"the store stayed locked for {seconds:.1f} s (waited up to {LOCKED_WAIT_SECONDS:g} s)")
        self.seconds = seconds


def retry_locked(call: Callable[..., T], *args, **kwargs) -> T:
    """Call ``call``; on SQLite lock contention wait (jittered back-off) and try again, for at most
    :data:`LOCKED_WAIT_SECONDS` (each try may itself wait on the lock: SQLite's busy timeout, 5 to 20 s in
    MLflow), then raise :class:`StoreLockedTooLong`."""
    started = time.monotonic()
    for attempt in itertools.count():
        try:
            return call(*args, **kwargs)
        except Exception as error:  # MLflow wraps SQLAlchemy errors in its own types
            if isinstance(error, StoreLockedTooLong) or "locked" not in str(error).lower():
                raise
            waited = time.monotonic() - started
            if waited >= LOCKED_WAIT_SECONDS:
                raise StoreLockedTooLong(waited) from error
            # Jitter only spreads retries in time; it never touches results.
            delay = min(0.1 * 2**attempt * (1 + random.random()), LOCKED_WAIT_SECONDS - waited)  # noqa: S311
            log.debug("MLflow store locked, retrying in %.2f s", delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


#: SQLite's words for a store that cannot be used, and what they mean to whoever runs the command.
SQLITE_FAULTS = {
    "file is not a database": "not an SQLite database (restore it from a backup, or use a store that "
                              "`mlnb init-tracking` made)",
    "attempt to write a readonly database": "read-only (make the file and its folder writable)",
    "database or disk is full": "its disk is full (no space left to write the store)",
    "database is locked": "locked by another process",
}


def store_fault(error: BaseException, uri: str) -> str | None:
    """What is wrong with the SQLite store at ``uri``, in words, when ``error`` (or one it was raised from)
    says the store cannot be used; else None (the error is about something else)."""
    from mlflow.exceptions import MlflowException

    for link in _chain(error):
        if isinstance(link, StoreLockedTooLong):
            return f"locked by another process for {link.seconds:.1f} s (mlnb waits up to {LOCKED_WAIT_SECONDS:g} s)"
        if _sqlite_fault(link):
            return SQLITE_FAULTS[str(link)]
        schema = re.search(r"out-of-date database schema \(found version (\w+), but expected (\w+)\)", str(link))
        if isinstance(link, MlflowException) and schema:
            return other_schema(uri, *schema.groups())
    return None


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and the errors it was raised from (or while handling), nearest first."""
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _sqlite_fault(error: BaseException) -> bool:
    return isinstance(error, sqlite3.DatabaseError) and str(error) in SQLITE_FAULTS


class _QuietStoreFaults(logging.Filter):
    """Leaves out MLflow's own log of a SQLite fault (an ERROR with a traceback, at every locked try too): the
    error is raised on to the caller, where :func:`store_faults` makes it one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not any(_sqlite_fault(link) for link in _chain(error))


def mlflow_migrations():
    """This MLflow's schema migrations (alembic scripts): the revisions of the stores it can upgrade."""
    import mlflow.store
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(mlflow.store.__file__).parent / "db_migrations"))


def other_schema(uri: str, found: str, expected: str) -> str:
    """A store whose schema revision ``found`` is not this MLflow's ``expected``: which way to go."""
    import mlflow
    from alembic.util import CommandError

    text = f"written by another MLflow version (schema {found}; this MLflow, {mlflow.__version__}, expects {expected})"
    try:
        mlflow_migrations().get_revision(found)
    except CommandError:
        return f"{text}: a newer MLflow made it; log with that version"
    return f"{text}: back it up, then upgrade it with `mlflow db upgrade {uri}`"


@contextlib.contextmanager
def store_faults(uri: str) -> Iterator[None]:
    """Within the block, an error saying the SQLite store at ``uri`` cannot be used (:func:`store_fault`)
    becomes a one-line :class:`TrackingStoreError` naming its file; other errors pass as they are."""
    db_path = sqlite_path(uri)
    mlflow_log, quiet = logging.getLogger("mlflow.store.db.utils"), _QuietStoreFaults()
    mlflow_log.addFilter(quiet)  # for the block alone: a host process's MLflow logging is left as it was
    try:
        yield
    except MlnbError:
        raise
    except Exception as error:
        fault = store_fault(error, uri) if db_path is not None else None
        if fault is None:
            raise
        raise TrackingStoreError(f"MLflow store {db_path}: {fault}") from None
    finally:
        mlflow_log.removeFilter(quiet)


def pipeline_tracking_uri(mlflow_settings: Mapping[str, Any]) -> str:
    """The URI every job of the pipeline logs to: the config's ``mlflow.tracking_uri``, or when that is
    null the SQLite store under the working directory (absolute: a job may run elsewhere)."""
    return mlflow_settings["tracking_uri"] or default_tracking_uri()


def resolve_uri(uri: str | None) -> str | None:
    if uri in (None, ""):
        return None
    return default_tracking_uri() if uri == "default" else uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else None."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def mlflow_client(uri: str):
    """An MlflowClient for ``uri`` (a SQLite store is opened here: a faulty one is a :class:`TrackingStoreError`);
    a scheme MLflow has no store for is a one-line error."""
    import mlflow
    from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException

    try:
        with store_faults(uri):
            return retry_locked(mlflow.MlflowClient, tracking_uri=uri)
    except UnsupportedModelRegistryStoreURIException:
        scheme = uri.partition("://")[0] if "://" in uri else uri.partition(":")[0]
        raise ConfigError(f"MLflow tracking URI {uri}: unsupported scheme {scheme!r} (use sqlite:///PATH, "
                          "http(s)://HOST:PORT or another MLflow store URI)") from None


def artifacts_beside(db_path: Path, folder: str = ARTIFACTS_FOLDER) -> str:
    """The file:// URI of the artifact folder beside a SQLite store (where its experiment keeps artifacts)."""
    return (db_path.parent / folder).resolve().as_uri()


def create_experiment(tracking_uri: str, name: str) -> str:
    """Create the store and the experiment if missing; return the experiment's id.

    Only ``mlnb init-tracking`` calls this, once, before jobs fan out.
    """
    uri = resolve_uri(tracking_uri)
    db_path = sqlite_path(uri)
    if db_path is not None:
        db_path.parent.mkdir(parents=True, exist_ok=True)
    with store_faults(uri):
        return _create_experiment(mlflow_client(uri), uri, db_path, name)


def _create_experiment(client, uri: str, db_path: Path | None, name: str) -> str:
    experiment = _lookup(client, uri, name)
    if experiment is not None:
        if (db_path is not None and ARTIFACTS_TAG not in experiment.tags
                and experiment.artifact_location == artifacts_beside(db_path)):
            # Made before the tag existed, in the layout the tag describes.
            retry_locked(client.set_experiment_tag, experiment.experiment_id, ARTIFACTS_TAG, ARTIFACTS_FOLDER)
        return experiment.experiment_id
    if db_path is None:
        return retry_locked(client.create_experiment, name)
    return retry_locked(client.create_experiment, name, artifact_location=artifacts_beside(db_path),
                        tags={ARTIFACTS_TAG: ARTIFACTS_FOLDER})


def experiment_id(tracking_uri: str, name: str, client=None) -> str:
    """The id of an existing experiment; ConfigError (naming the URI) when the store or it is missing.

    Never creates anything: on a fresh SQLite store, concurrent creation races
    ("duplicate column name"), so the store is left to ``mlnb init-tracking``.
    """
    uri = resolve_uri(tracking_uri)
    _require_store(uri, name)
    with store_faults(uri):
        experiment = _lookup(client or mlflow_client(uri), uri, name)
    if experiment is None:
        raise ConfigError(f"MLflow experiment {name!r} not found at {uri}: {_create_hint(uri, name)}")
    return experiment.experiment_id


def _create_hint(uri: str, name: str) -> str:
    return (f"create it first with `mlnb init-tracking --tracking-uri {uri} --experiment {name}` "
            "(Snakemake's init_tracking rule)")


def _require_store(uri: str, experiment: str) -> None:
    """A missing SQLite store is an error, raised before any MLflow client would create it."""
    db_path = sqlite_path(uri)
    if db_path is not None and not db_path.is_file():
        raise ConfigError(f"MLflow store {db_path} does not exist: {_create_hint(uri, experiment)}")


def _lookup(client, uri: str, name: str):
    """The experiment called ``name`` (artifacts relocated to a moved SQLite store), or None."""
    experiment = retry_locked(client.get_experiment_by_name, name)
    if experiment is None:
        return None
    if experiment.lifecycle_stage == "deleted":
        raise ConfigError(f"MLflow experiment {name!r} at {uri} is deleted: restore it "
                          "(mlflow experiments restore) or choose another mlflow.experiment")
    db_path = sqlite_path(uri)
    folder = experiment.tags.get(ARTIFACTS_TAG)
    if db_path is not None and folder is not None:
        expected = artifacts_beside(db_path, folder)
        if experiment.artifact_location != expected:
            relocate_artifacts(db_path, experiment.experiment_id, experiment.artifact_location, expected)
            experiment = retry_locked(client.get_experiment, experiment.experiment_id)
    return experiment


def relocate_artifacts(db_path: Path, experiment: str, old: str, new: str) -> None:
    """Point an experiment and its runs from artifact root ``old`` to ``new`` (the store was moved).

    MLflow has no API to change an artifact location, so this updates the two
    columns in one SQLite transaction; concurrent jobs doing the same wait on the
    lock and find nothing left to change.
    """
    log.info("MLflow store %s was moved: artifacts now under %s (were %s)", db_path, new, old)
    with contextlib.closing(sqlite3.connect(db_path, timeout=60)) as db, db:
        db.execute("update experiments set artifact_location = ? where experiment_id = ? and artifact_location = ?",
                   (new, experiment, old))
        db.execute("update runs set artifact_uri = ? || substr(artifact_uri, ?) "
                   "where experiment_id = ? and substr(artifact_uri, 1, ?) = ?",
                   (new, len(old) + 1, experiment, len(old) + 1, old + "/"))


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


def device_tags() -> dict[str, str]:
    """The compute device, and CUDA/cuDNN versions and the GPU when the job uses torch.

    Looks at torch only when the job has already imported it (importing torch just
    to name the device costs ~2 s and ~190 MB per job), and names a GPU only once
    CUDA is initialised (so tagging never initialises it).
    """
    cpu = f"cpu:{platform.machine()}:{os.cpu_count()} cores"
    torch = sys.modules.get("torch")
    if torch is None:
        return {"device": cpu}
    tags = {"cuda.version": torch.version.cuda or "none",
            "cudnn.version": str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "none"}
    if torch.cuda.is_initialized():
        tags["gpu.name"] = torch.cuda.get_device_name()
        tags["device"] = f"cuda:{tags['gpu.name']}"
    else:
        tags["device"] = cpu
    return tags


def config_hash(config: Mapping[str, Any]) -> str:
    """A short digest of the settings a run used (canonical JSON, keys sorted)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def source_tags(source: str, commit: str) -> dict[str, str]:
    """The tags MLflow's UI shows as a run's User and Source: who ran which command, at which commit
    (``commit`` as :func:`git_commit` gives it; the ``git_commit`` tag keeps its ``-dirty``)."""
    tags = {"mlflow.user": user(), "mlflow.source.name": source, "mlflow.source.type": "LOCAL"}
    sha = commit.removesuffix("-dirty")
    if sha != "unknown":
        tags["mlflow.source.git.commit"] = sha
    return tags


def provenance_tags(stage: str, config: Mapping[str, Any], source: str = "mlnb") -> dict[str, str]:
    commit = git_commit()
    return {
        "git_commit": commit,
        **source_tags(source, commit),
        "config_hash": config_hash(config),
        "mlnb.stage": stage,
        "host": platform.node(),
        **device_tags(),
        **{f"env.{name}": os.environ[name] for name in PROVENANCE_ENV if name in os.environ},
        **{f"version.{k}": v for k, v in package_versions().items()},
    }


def tag_values(tags: Mapping[str, Any]) -> dict[str, str]:
    """Tags as MLflow's REST protocol takes them: every value a string (a SQLite store stringifies what it is
    given; a server refuses anything else). Params are strings already (:func:`flatten_params`)."""
    return {str(key): str(value) for key, value in tags.items()}


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
    """Logging calls for one run; a Tracker with no run ignores every call.

    Metrics are buffered: :meth:`log_metrics` keeps them in memory and writes one
    batch when ``flush_size`` metrics are waiting or ``flush_seconds`` have passed
    since the last write, and at the end of the run (per-step training losses
    must not cost one SQLite transaction each). Everything else is written at once.

    Every write goes through :meth:`_write`: a tracking server that does not answer
    raises :class:`TrackingServerError` once, a SQLite store that cannot be written
    :class:`TrackingStoreError`, and the Tracker then writes nothing more (each write
    would fail or wait as long again).
    """

    def __init__(self, run_id: str | None = None, client=None, flush_size: int = MAX_METRICS_PER_BATCH,
                 flush_seconds: float = 10.0, timeout: float | None = None):
        self.run_id = run_id
        self._client = client
        self.flush_size = flush_size
        self.flush_seconds = flush_seconds
        self.timeout = timeout
        #: The tracking server or store failed a write: nothing more is written (each write would fail or wait
        #: as long again), and the run is left as the store last recorded it.
        self.store_lost = False
        self._pending: list = []
        self._last_flush = time.monotonic()
        self._stored_steps: dict[str, int] = {}  # a continued run's: see skip_stored_metrics

    @property
    def active(self) -> bool:
        return self.run_id is not None

    def _write(self, call: Callable[..., T], *args, **kwargs) -> T | None:
        if self.store_lost:
            return None
        try:
            with store_faults(self._client.tracking_uri):
                return retry_locked(call, *args, **kwargs)
        except TrackingStoreError:
            self.store_lost = True
            raise
        except OSError as error:
            if error.errno not in WRITE_FAULTS:
                raise
            raise self._artifacts_fault(error) from None  # the run itself may still be ended (another disk)
        except Exception as error:
            if not request_failed(error):
                raise
            self.store_lost = True
            raise server_error(self._client.tracking_uri, self.timeout, error) from None

    def _artifacts_fault(self, error: OSError) -> TrackingStoreError:
        """A local artifact that could not be written (a full or read-only disk), as one line naming where."""
        try:
            where = f" at {self._client.get_run(self.run_id).info.artifact_uri}"
        except Exception:  # the store cannot say either: the run id must do
            where = ""
        return TrackingStoreError(f"MLflow artifacts of run {self.run_id}{where}: cannot write them ({error.strerror})")

    def log_params(self, params: Mapping[str, Any], logged: Mapping[str, str] | None = None) -> None:
        """Log params; ``logged`` (a resumed run's params) must agree on every key both have."""
        if not self.active:
            return
        from mlflow.entities import Param

        flat = flatten_params(params)
        logged = logged or {}
        for key, value in flat.items():
            if key in logged and logged[key] != value:
                raise ConfigError(f"cannot resume MLflow run {self.run_id}: param {key} was {logged[key]!r}, "
                                  f"now {value!r}")
        items = [Param(k, v) for k, v in flat.items() if k not in logged]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._write(self._client.log_batch, self.run_id, params=items[start:start + MAX_PARAMS_PER_BATCH])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if not self.active:
            return
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), step or 0
        self._pending.extend(Metric(k, float(v), now, step) for k, v in metrics.items()
                             if step > self._stored_steps.get(k, -1))
        if len(self._pending) >= self.flush_size or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def skip_stored_metrics(self, keys: Iterable[str]) -> None:
        """Continuing a run (resumed from a checkpoint): leave out the points of metrics ``keys`` that the store
        already holds, each metric's steps up to the last one stored. The store holds what was flushed before
        the stop, which may be more than the checkpoint saw; the resumed run computes those steps again, and
        logs each once (see :mod:`mlnb.training.loop`)."""
        for key in keys:
            history = self._write(self._client.get_metric_history, self.run_id, key) or ()
            self._stored_steps[key] = max((point.step for point in history), default=-1)

    def flush(self) -> None:
        """Write the buffered metrics, at most MLflow's batch limit per call."""
        while self._pending and not self.store_lost:
            batch = self._pending[:MAX_METRICS_PER_BATCH]
            self._write(self._client.log_batch, self.run_id, metrics=batch)
            del self._pending[:len(batch)]
        self._last_flush = time.monotonic()

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.active:
            return
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in tag_values(tags).items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self._write(self._client.log_batch, self.run_id, tags=items[start:start + MAX_PARAMS_PER_BATCH])

    def log_datasets(self, inputs: Mapping[str, str | os.PathLike], digests: Mapping[str, str], context: str) -> None:
        """Each input file as an MLflow dataset (name, digest, its path as source) used for ``context``."""
        if not self.active:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        datasets = [DatasetInput(Dataset(name=name, digest=digests[name], source_type="local",
                                         source=json.dumps({"uri": Path(path).resolve().as_uri()})),
                                 tags=[InputTag(DATASET_CONTEXT_TAG, context)])
                    for name, path in inputs.items()]
        self._write(self._client.log_inputs, self.run_id, datasets=datasets)

    def log_array_dataset(self, name: str, arrays: Mapping[str, np.ndarray], context: str, source: str) -> None:
        """Arrays a command makes itself (no input file: a gate's truth table) as an MLflow dataset ``name``:
        digest the md5 of their bytes, source the command ``source``, profile their shapes."""
        if not self.active:
            return
        from mlflow.entities import Dataset, DatasetInput, InputTag

        digest = hashlib.md5(usedforsecurity=False)
        for key, array in arrays.items():
            digest.update(key.encode() + np.ascontiguousarray(array).tobytes())
        dataset = Dataset(name=name, digest=digest.hexdigest(), source_type="code",
                          source=json.dumps({"tags": {"mlflow.source.name": source, "mlflow.source.type": "LOCAL"}}),
                          profile=json.dumps({f"{key}_shape": list(array.shape) for key, array in arrays.items()}))
        self._write(self._client.log_inputs, self.run_id,
                    datasets=[DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT_TAG, context)])])

    def log_image(self, image: np.ndarray, name: str) -> None:
        """Log an HxW or HxWxC uint8 array as ``name`` (a .png path inside the run)."""
        if self.active:
            self._write(self._client.log_image, self.run_id, image, artifact_file=name)

    def log_step_image(self, image: np.ndarray, key: str, step: int) -> None:
        """Log an HxW or HxWxC uint8 array as image ``key`` at ``step`` (the UI shows them by step)."""
        if self.active:
            self._write(self._client.log_image, self.run_id, image, key=key, step=step)

    def log_artifact(self, path: str | os.PathLike, folder: str | None = None) -> None:
        if self.active:
            self._write(self._client.log_artifact, self.run_id, str(path), folder)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        if self.active:
            self._write(self._client.log_dict, self.run_id, dict(data), name)

    def log_pytorch_model(self, model, name: str, input_example: np.ndarray,
                          pip_requirements: list[str] | None = None) -> None:
        """A CPU copy of the torch module ``model``, in eval mode, as the run's MLflow model ``name`` (pytorch
        flavour, loadable with ``mlflow.pytorch.load_model``), with the signature of its output for
        ``input_example``; the caller's module is left as it is. It needs torch (this one's version, unless
        ``pip_requirements`` say otherwise), not mlnb: it is exported as a traced graph (pt2)."""
        if not self.active:
            return
        import copy

        import mlflow
        import mlflow.pytorch
        import torch
        from mlflow.models import infer_signature

        pip_requirements = pip_requirements or [f"torch=={torch.__version__.split('+')[0]}"]
        module = copy.deepcopy(model).cpu().eval()
        with torch.no_grad():
            output = module(torch.from_numpy(input_example)).numpy()
        # MLflow files a model under the active run's experiment (else the default one), at the global URI
        mlflow.set_tracking_uri(self._client.tracking_uri)
        self._write(mlflow.start_run, run_id=self.run_id)
        try:
            self._write(mlflow.pytorch.log_model, module, name=name, input_example=input_example,
                        signature=infer_signature(input_example, output), pip_requirements=pip_requirements)
        finally:
            self._write(mlflow.end_run, "RUNNING")  # no longer the active run, but still running: tracked_run ends it

    def terminate(self, status: str) -> None:
        if self.active:
            self._write(self._client.set_terminated, self.run_id, status)


@contextlib.contextmanager
def tracked_run(args: TrackingOptions | Any, run_name: str, params: Mapping[str, Any] | None = None,
                run_id: str | None = None, inputs: Mapping[str, str | os.PathLike] | None = None,
                tags: Mapping[str, Any] | None = None, input_context: str = "training") -> Iterator[Tracker]:
    """Open an MLflow run from a command's tracking options (or its parsed arguments), with provenance.

    ``run_id`` continues that run (resuming from a checkpoint, a Slurm retry)
    instead of creating one; its logged params must match. With ``MLNB_PARENT_RUN_ID``
    set, a new run is a child of that run; in a Snakemake job logged by the MLflow logger plugin
    (``MLNB_JOB``), a child of the job's run (:mod:`mlnb.job_runs`). ``inputs`` maps a name to an input file,
    logged as an MLflow dataset (digest: its md5, also the param ``input_md5.NAME``) used for ``input_context``.
    With a ``system_metrics_interval`` in the options, the run records the machine's load as system metrics.

    Every request to a tracking server ends within the options' ``timeout``; one that
    does not raises :class:`TrackingServerError` (one line) and the run is left as it is.
    The run ends FINISHED; KILLED with tag ``mlnb.stopped=<signal>`` when a signal
    stopped the body (:class:`mlnb.stopping.Stopped`, SIGTERM's SystemExit, Ctrl-C);
    FAILED on any other error. Buffered metrics are flushed first, and stop signals
    arriving while the run is closed wait until it is, so no run is left RUNNING.
    """
    options = args if isinstance(args, TrackingOptions) else TrackingOptions.from_args(args)
    uri = resolve_uri(options.tracking_uri)
    params = dict(params if params is not None else _cli_params(args))
    if options.stage_config:
        params["config"] = options.stage_config
    inputs = {**_named_inputs(options.input_file), **(inputs or {})}
    if uri is None:
        yield Tracker()
        return
    run_tags = tag_values({**provenance_tags(run_name, options.stage_config or params, options.source),
                           **(tags or {})})
    timeout = options.timeout or float(mlflow_default("timeout"))
    with request_bounds(timeout), stops_outlive_finalizers():
        try:
            run = _open_run(uri, options.experiment, options.run_name or run_name, run_id, run_tags)
        except Exception as error:
            if not request_failed(error):
                raise
            raise server_error(uri, timeout, error) from None
        tracker = Tracker(run.info.run_id, mlflow_client(uri), timeout=timeout)
        monitor = _system_metrics(uri, tracker.run_id, options.system_metrics_interval, resumed=run_id is not None)
        status, stopped_by = "FAILED", None
        try:
            if run_id is not None:
                tracker.set_tags(run_tags)
                tracker.skip_stored_metrics(run.data.metrics)
            tracker.log_params(params, logged=run.data.params)
            if inputs:
                digests = {name: file_md5(path) for name, path in inputs.items()}
                tracker.log_params({f"input_md5.{name}": digest for name, digest in digests.items()},
                                   logged=run.data.params)
                tracker.log_datasets(inputs, digests, input_context)
            yield tracker
            status = "FINISHED"
        except BaseException as error:
            stopped_by = stop_signal_of(error)
            if stopped_by is not None:
                status = "KILLED"
            elif isinstance(error, SystemExit) and error.code in (0, None):
                status = "FINISHED"
            raise
        finally:
            with deferred_signals():
                if monitor is not None and not tracker.store_lost:
                    _finish_system_metrics(monitor, uri)  # while the run is still RUNNING
                _end_run(tracker, status, stopped_by, keep_error=status == "FINISHED")


def _open_run(uri: str, experiment_name: str, run_name: str, run_id: str | None, tags: dict[str, str]):
    """A new run called ``run_name`` tagged ``tags``, or the run ``run_id`` RUNNING again; a faulty store is
    a :class:`TrackingStoreError` before any run is made."""
    _require_store(uri, experiment_name)  # before the client: it would create the store
    client = mlflow_client(uri)
    experiment = experiment_id(uri, experiment_name, client)
    with store_faults(uri):
        if run_id is None:
            return _create_run(client, uri, experiment, run_name, tags)
        return _resume_run(client, uri, experiment, run_id)


def _system_metrics(uri: str, run_id: str, interval: float | None, resumed: bool):
    """MLflow's monitor of CPU, memory, disk, network (and GPU, with nvidia-ml-py), sampling every
    ``interval`` s into the run (continuing its steps when ``resumed``); None without an interval."""
    if interval is None:
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=interval, resume_logging=resumed, tracking_uri=uri)
    monitor.start()
    return monitor


def _finish_system_metrics(monitor, uri: str) -> None:
    """Stop the monitor, then log one last sample with those it took since it last logged. MLflow's monitor
    drops that tail, so a run shorter than the sampling interval (a logic gate) would have no system metrics."""
    monitor.finish()
    try:
        with store_faults(uri):  # MLflow's own traceback of a store fault left out, as for every write
            monitor.collect_metrics()
            monitor.publish_metrics(monitor.aggregate_metrics())
            monitor.mlflow_logger.flush()
    except Exception as error:  # a store that fails here fails the run's own last writes next, which report it
        log.debug("the last system metrics sample was not logged: %s", error)


def _create_run(client, uri: str, experiment: str, run_name: str, tags: dict[str, str]):
    # A Snakemake job's stage run nests in its job's run (the logger plugin's; mlnb.job_runs).
    parent = os.environ.get(PARENT_RUN_ENV) or job_runs.find_job_run(client, experiment, retry_locked)
    if parent:
        _existing_run(client, uri, parent, f"{PARENT_RUN_ENV}={parent}: parent run")
        tags = {**tags, "mlflow.parentRunId": parent}
    return retry_locked(client.create_run, experiment, run_name=run_name, tags=tags)


def _resume_run(client, uri: str, experiment: str, run_id: str):
    run = _existing_run(client, uri, run_id, "cannot resume MLflow run")
    if run.info.experiment_id != experiment:
        raise ConfigError(f"cannot resume MLflow run {run_id}: it belongs to experiment {run.info.experiment_id}, "
                          f"not {experiment}")
    retry_locked(client.update_run, run_id, status="RUNNING")
    return run


def _existing_run(client, uri: str, run_id: str, what: str):
    from mlflow.exceptions import MlflowException

    try:
        return retry_locked(client.get_run, run_id)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ConfigError(f"{what} {run_id}: not found at {uri}") from None


def _end_run(tracker: Tracker, status: str, stopped_by: str | None, keep_error: bool) -> None:
    """Flush, refresh the device tags (CUDA may be up by now), mark the run ``status``.

    When the body succeeded, a failed flush fails the run and propagates; when it
    already failed, the body's error is the one that matters and this only logs.
    A lost tracking server or store is not waited for again.
    """
    try:
        tracker.flush()
        tracker.set_tags({**device_tags(), **({"mlnb.stopped": stopped_by} if stopped_by else {})})
    except Exception as error:
        if keep_error:
            status = "FAILED"
            raise
        log.warning("could not write the last metrics of MLflow run %s: %s", tracker.run_id, error)
    finally:
        try:
            tracker.terminate(status)
        except (TrackingServerError, TrackingStoreError) as error:
            if keep_error:
                raise
            log.warning("could not end MLflow run %s: %s", tracker.run_id, error)


def _named_inputs(pairs: Iterable[str]) -> dict[str, str]:
    named = {}
    for pair in pairs:
        name, separator, path = pair.partition("=")
        if not separator or not name or not path:
            raise ConfigError(f"--input-file {pair!r}: expected NAME=PATH")
        named[name] = path
    return named


def _cli_params(args) -> dict[str, Any]:
    skip = {"tracking_uri", "experiment", "run_name", "stage_config", "input_file", "tracking_timeout",
            "system_metrics_interval", "source"}
    return {k: v for k, v in vars(args).items() if k not in skip}
