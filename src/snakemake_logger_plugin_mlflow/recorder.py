"""One Snakemake invocation as MLflow runs: the invocation's run and a child run per job.

Events arrive in Snakemake's logging thread. Each becomes a write to MLflow,
done at once when the store and experiment exist. On a fresh SQLite store they
do not yet: ``init_tracking`` (the pipeline's first job) creates them, and
creating a store from two processes at once races in its migrations, so the
writes wait in memory until the experiment appears (checked read-only), or until
Snakemake ends, when the recorder creates the experiment itself (no job runs then).

Every request to a tracking server ends within the timeout (``mlflow.timeout``): MLflow's
HTTP settings (:func:`mlnb.tracking.request_settings`) are in Snakemake's environment before any
job starts — the workflow sets them while it parses, the handler when it is given a timeout —
never changed from this thread, where Snakemake starts jobs at the same time. When the server
does not answer, the recorder warns once and gives up on it for the rest of the invocation, so a
dead server never holds Snakemake after its jobs are done.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from snakemake_interface_logger_plugins.common import LogEvent

from mlnb import tracking
from mlnb.errors import ConfigError
from mlnb.job_runs import (
    EXPERIMENT_ENV,
    KIND_INVOCATION,
    KIND_JOB,
    TAG_INVOCATION,
    TAG_JOB,
    TAG_KIND,
    TAG_WORKDIR,
    TRACKING_TIMEOUT_ENV,
    TRACKING_URI_ENV,
    job_key,
    running_runs,
)
from snakemake_logger_plugin_mlflow.command_line import command_line_facts

#: The last lines of a failed job's log that are attached to its run.
LOG_TAIL_LINES = 200
LOG_TAIL_BYTES = 256 * 1024
MAX_TAG_CHARS = 5000


def millis(seconds: float) -> int:
    return int(seconds * 1000)


@dataclass
class Run:
    """A run to be: its id once the write that creates it has happened."""

    run_id: str | None = None


@dataclass
class Job:
    key: str
    run: Run
    start_ms: int
    logs: list[str]
    benchmark: str | None
    open: bool = True
    failed: bool = False


@dataclass
class Invocation:
    run: Run = field(default_factory=Run)
    done: int = 0
    total: int = 0
    errors: list[str] = field(default_factory=list)


class Recorder:
    """Turns Snakemake's log events into MLflow runs (see the module's docstring)."""

    def __init__(self, tracking_uri: str | None, experiment: str | None, invocation_id: str,
                 interrupted_by: Callable[[], str | None] = lambda: None, client=None, timeout: float | None = None):
        self._settings_uri = tracking_uri
        self.interrupted_by = interrupted_by
        self._settings_experiment = experiment
        self._settings_timeout = timeout
        self.timeout: float | None = None
        self.server_lost = False
        self.invocation_source: dict[str, str] = {}
        self.invocation_id = invocation_id
        self.client = client
        self.uri: str | None = None
        self.experiment: str | None = None
        self.experiment_id: str | None = None
        self.started: dict = {}
        self.cores: int | None = None
        self.invocation: Invocation | None = None
        self.jobs: dict[int, Job] = {}
        self._pending: list[Callable[[], None]] = []
        self._last_error: str | None = None
        self._warned: set[str] = set()
        self._handlers = {
            LogEvent.WORKFLOW_STARTED: self._workflow_started,
            LogEvent.RESOURCES_INFO: self._resources_info,
            LogEvent.RUN_INFO: self._run_info,
            LogEvent.JOB_INFO: self._job_info,
            LogEvent.JOB_FINISHED: self._job_finished,
            LogEvent.JOB_ERROR: self._job_error,
            LogEvent.PROGRESS: self._progress,
            LogEvent.ERROR: self._error,
        }

    # -- events ---------------------------------------------------------------------------------

    def handle(self, record) -> None:
        handler = self._handlers.get(getattr(record, "event", None))
        if handler is None:
            return
        try:
            handler(record)
        except Exception as error:  # a record of an unexpected shape must not stop Snakemake's logging thread
            self._warn(f"{record.event}: {type(error).__name__}: {error}")
        self._write_pending()

    def _workflow_started(self, record) -> None:
        self.started = {name: getattr(record, name, None) for name in
                        ("datetime", "workflow_id", "config_md5", "snakemake_version", "host", "user", "cmd")}

    def _resources_info(self, record) -> None:
        if getattr(record, "cores", None) is not None:
            self.cores = record.cores

    def _run_info(self, record) -> None:
        """Jobs are planned: open the invocation's run, with the planned job counts as params."""
        if self.invocation is not None:
            return
        self.timeout = self._settings_timeout or float(os.environ.get(TRACKING_TIMEOUT_ENV)
                                                       or tracking.mlflow_default("timeout"))
        self.invocation = invocation = Invocation()
        self.uri = tracking.resolve_uri(self._settings_uri or os.environ.get(TRACKING_URI_ENV) or "default")
        self.experiment = self._settings_experiment or os.environ.get(EXPERIMENT_ENV) or "mlnb"
        workflow_id = str(self.started.get("workflow_id") or "unknown")
        name = f"{self.started.get('datetime') or time.strftime('%Y-%m-%d %H:%M:%S')} {workflow_id[:8]}"
        command = self.started.get("cmd")
        facts = command_line_facts(command)
        if self.cores is not None:
            facts["cores"] = str(self.cores)
        commit = tracking.git_commit()
        # MLflow's User and Source of the invocation's runs: Snakemake's user, snakemake, the commit
        self.invocation_source = {**tracking.source_tags("snakemake", commit),
                                  **({"mlflow.user": self.started["user"]} if self.started.get("user") else {})}
        tags = {
            TAG_KIND: KIND_INVOCATION,
            TAG_INVOCATION: self.invocation_id,
            TAG_WORKDIR: os.getcwd(),
            "snakemake.workflow_id": workflow_id,
            "git_commit": commit,
            **self.invocation_source,
            "config_hash": self.started.get("config_md5") or "unknown",
            "version.snakemake": self.started.get("snakemake_version") or metadata.version("snakemake"),
            "version.mlnb": metadata.version("mlnb"),
            "host": self.started.get("host") or "unknown",
            "user": self.started.get("user") or "unknown",
            "snakemake.command": command or "unknown",
            **{f"snakemake.{name}": value for name, value in facts.items()},
        }
        params = {f"jobs.{rule}": count for rule, count in (getattr(record, "stats", None) or {}).items()}
        start = millis(record.created)
        self._submit(lambda: self._create(invocation.run, name, tags, params, start))

    def _job_info(self, record) -> None:
        """A job starts (again, on a restart): open its run under the invocation's."""
        invocation = self.invocation
        if invocation is None:
            return
        wildcards = {name: str(value) for name, value in (record.wildcards or {}).items()}
        logs = [str(path) for path in record.log or []]
        key = job_key(record.rule_name, wildcards, logs)
        job = Job(key=key, run=Run(), start_ms=millis(record.created), logs=logs, benchmark=record.benchmark)
        attempt = sum(1 for other in self.jobs.values() if other.key == key) + 1
        self.jobs[record.jobid] = job
        name = f"{record.rule_name} {' '.join(f'{k}={v}' for k, v in wildcards.items())}".strip()
        tags = {
            TAG_KIND: KIND_JOB,
            TAG_JOB: key,
            TAG_INVOCATION: self.invocation_id,
            TAG_WORKDIR: os.getcwd(),
            **self.invocation_source,
            "snakemake.rule": record.rule_name,
            "snakemake.jobid": str(record.jobid),
            "snakemake.attempt": str(attempt),
            "snakemake.reason": str(record.reason),
            "snakemake.log": ", ".join(job.logs) or "none",
        }
        params = {
            "rule": record.rule_name,
            "wildcards": wildcards,
            "threads": record.threads,
            "resources": _resources(record.resources),
            "input": list(record.input or []),
            "output": list(record.output or []),
            "log": job.logs,
            "benchmark": record.benchmark or "none",
            "local": bool(getattr(record, "local", False)),
        }

        def create():
            if invocation.run.run_id is None:
                return  # the invocation's run could not be written: nothing to nest under
            self._create(job.run, name, {**tags, "mlflow.parentRunId": invocation.run.run_id}, params, job.start_ms)

        self._submit(create)

    def _job_finished(self, record) -> None:
        job = self._open_job(record.job_id)
        if job is not None:
            end = millis(record.created)
            self._submit(lambda: self._end_job(job, "FINISHED", end))

    def _job_error(self, record) -> None:
        job = self._open_job(record.jobid)
        if job is None:
            return
        # A job that ends in error once Snakemake is interrupted was stopped, not broken.
        status = "KILLED" if self.interrupted_by() else "FAILED"
        job.failed = status == "FAILED"
        end = millis(record.created)
        error = self._last_error or record.getMessage()
        self._last_error = None
        logs = [str(p) for p in record.log or []] or job.logs
        self._submit(lambda: self._end_job(job, status, end, error=error, logs=logs,
                                           kill_children=status == "KILLED"))

    def _progress(self, record) -> None:
        invocation = self.invocation
        if invocation is None:
            return
        invocation.done, invocation.total = record.done, record.total
        metrics = {"jobs_done": record.done, "jobs_total": record.total,
                   "progress": record.done / record.total if record.total else 1.0}
        when = millis(record.created)
        self._submit(lambda: self._log(invocation.run, metrics=metrics, step=record.done, when=when))

    def _error(self, record) -> None:
        self._last_error = record.getMessage()
        if self.invocation is not None:
            self.invocation.errors.append(self._last_error)

    def _open_job(self, jobid) -> Job | None:
        job = self.jobs.get(jobid)
        if job is None or not job.open:
            return None
        job.open = False
        return job

    # -- the end --------------------------------------------------------------------------------

    def finish(self, interrupted_by: str | None = None) -> None:
        """Snakemake is done: end every run (none stays RUNNING) and write what is still waiting.

        The invocation ends FINISHED when every job is done, KILLED when Snakemake
        was interrupted (or stopped before the end without an error), else FAILED.
        Jobs still open were cancelled: KILLED, and so are their RUNNING stage runs.
        """
        invocation = self.invocation
        if invocation is None:
            return
        end = millis(time.time())
        if interrupted_by is not None:
            status = "KILLED"
        elif invocation.total and invocation.done >= invocation.total:
            status = "FINISHED"
        elif invocation.errors or any(job.failed for job in self.jobs.values()):
            status = "FAILED"
        else:
            status = "KILLED"
        for job in self.jobs.values():
            if job.open:
                job.open = False
                self._submit(lambda job=job: self._end_job(job, "KILLED", end, kill_children=True))
        tags = {"snakemake.status": status}
        if interrupted_by is not None:
            tags["mlnb.stopped"] = interrupted_by
        if status == "FAILED" and invocation.errors:
            tags["mlnb.error"] = invocation.errors[-1][-MAX_TAG_CHARS:]
        self._submit(lambda: self._end(invocation.run, status, end, tags))
        self._write_pending(create_experiment=True)

    # -- writes ---------------------------------------------------------------------------------

    def _submit(self, write: Callable[[], None]) -> None:
        if not self.server_lost:
            self._pending.append(write)

    def _write_pending(self, create_experiment: bool = False) -> None:
        if not self._pending:
            return
        if not self._experiment_ready(create_experiment):
            return
        while self._pending:
            write = self._pending.pop(0)
            try:
                write()
            except Exception as error:  # the pipeline must never fail because its logger could not write
                if tracking.request_failed(error):
                    self._give_up(error)
                else:
                    self._warn(f"{type(error).__name__}: {error}")

    def _give_up(self, error: Exception) -> None:
        """The server did not answer: warn once, drop what waits, write nothing more (each would wait as long)."""
        self.server_lost = True
        self._pending.clear()
        self._warn(f"{tracking.failure_reason(error)} (no answer within {self.timeout:g} s, config key "
                   "mlflow.timeout); nothing more is logged for this invocation")

    def _experiment_ready(self, create: bool) -> bool:
        if self.experiment_id is not None:
            return True
        if not create and not self._store_exists():
            return False
        try:
            if self.client is None:
                import mlflow

                self.client = mlflow.MlflowClient(tracking_uri=self.uri)
            self.experiment_id = (tracking.create_experiment(self.uri, self.experiment) if create
                                  else tracking.experiment_id(self.uri, self.experiment, self.client))
        except Exception as error:
            if tracking.request_failed(error):
                self._give_up(error)
            elif create or not isinstance(error, ConfigError):  # missing is expected until init_tracking ran
                self._warn(f"{type(error).__name__}: {error}")
            return False
        return True

    def _store_exists(self) -> bool:
        """True unless the store is SQLite and its experiment is not yet there (looked up read-only).

        Opening a SQLite store through MLflow creates it, racing with init_tracking's migrations.
        """
        db_path = tracking.sqlite_path(self.uri)
        if db_path is None:
            return True
        if not db_path.is_file():
            return False
        try:
            with contextlib.closing(sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True,
                                                    timeout=30)) as db:
                return db.execute("select 1 from experiments where name = ?",
                                  (self.experiment,)).fetchone() is not None
        except sqlite3.Error:  # tables not created yet
            return False

    def _create(self, run: Run, name: str, tags: Mapping[str, str], params: Mapping, start_ms: int) -> None:
        created = tracking.retry_locked(self.client.create_run, self.experiment_id, start_time=start_ms,
                                        tags=tracking.tag_values(tags), run_name=name)
        run.run_id = created.info.run_id
        self._log(run, params=tracking.flatten_params(params))

    def _log(self, run: Run, metrics: Mapping[str, float] | None = None, params: Mapping[str, str] | None = None,
             tags: Mapping[str, str] | None = None, step: int = 0, when: int | None = None) -> None:
        if run.run_id is None:
            return
        from mlflow.entities import Metric, Param, RunTag

        when = when or millis(time.time())
        metric_items = [Metric(key, float(value), when, step) for key, value in (metrics or {}).items()]
        param_items = [Param(key, value) for key, value in (params or {}).items()]
        tag_items = [RunTag(key, value) for key, value in tracking.tag_values(tags or {}).items()]
        for start in range(0, max(len(param_items), len(metric_items), len(tag_items), 1), 100):
            tracking.retry_locked(self.client.log_batch, run.run_id, metrics=metric_items[start:start + 100],
                                  params=param_items[start:start + 100], tags=tag_items[start:start + 100])

    def _end(self, run: Run, status: str, end_ms: int, tags: Mapping[str, str]) -> None:
        if run.run_id is None:
            return
        self._log(run, tags=tags)
        tracking.retry_locked(self.client.set_terminated, run.run_id, status, end_ms)

    def _end_job(self, job: Job, status: str, end_ms: int, error: str | None = None, logs=(),
                 kill_children: bool = False) -> None:
        """Duration and the benchmark TSV as metrics; on failure the error and the log's tail."""
        if job.run.run_id is None:
            return
        self._log(job.run, metrics={"duration_s": (end_ms - job.start_ms) / 1000}, step=0, when=end_ms)
        for step, row in enumerate(benchmark_rows(job.benchmark)):
            self._log(job.run, metrics={f"benchmark.{key}": value for key, value in row.items()}, step=step,
                      when=end_ms)
        tags = {"snakemake.status": status}
        if error:
            tags["mlnb.error"] = error[-MAX_TAG_CHARS:]
        for log in logs:
            tail = log_tail(log)
            if tail is not None:
                tracking.retry_locked(self.client.log_text, job.run.run_id, tail, f"log_tail/{Path(log).name}")
        if kill_children:
            for child in running_runs(self.client, self.experiment_id, {"mlflow.parentRunId": job.run.run_id},
                                      tracking.retry_locked):
                tracking.retry_locked(self.client.set_terminated, child.info.run_id, "KILLED", end_ms)
        self._end(job.run, status, end_ms, tags)

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            print(f"snakemake-logger-plugin-mlflow: could not log to MLflow ({self.uri}): {message}",
                  file=sys.stderr)


def _resources(resources) -> dict[str, str]:
    """A job's resources (Snakemake's ResourceList, or a mapping) without Snakemake's internal ``_`` ones."""
    items = resources.items() if hasattr(resources, "items") else []
    return {name: value for name, value in items if not name.startswith("_")}


def benchmark_rows(path: str | None) -> list[dict[str, float]]:
    """The numeric columns of each row of a ``benchmark:`` TSV (one row per repeat); [] without one."""
    if not path or not os.path.isfile(path):
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    numeric = []
    for row in rows:
        values = {}
        for key, text in row.items():
            with contextlib.suppress(TypeError, ValueError):
                values[key] = float(text)
        numeric.append(values)
    return numeric


def log_tail(path: str) -> str | None:
    """The last lines of a log file (at most LOG_TAIL_LINES and LOG_TAIL_BYTES); None when there is none."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            data = handle.read()
    except OSError:
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > LOG_TAIL_BYTES:
        lines = lines[1:]  # the first line read is probably cut
    return "\n".join(lines[-LOG_TAIL_LINES:]) + "\n"
