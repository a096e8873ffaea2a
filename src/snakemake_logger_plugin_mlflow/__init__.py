"""Snakemake logger plugin: every pipeline invocation as a tree of MLflow runs.

``snakemake --logger mlflow`` opens one run per invocation (named by date and
Snakemake's workflow id) and a child run per job; each stage's own run
(:mod:`mlnb.tracking`) nests inside its job's run (:mod:`mlnb.job_runs`).
Snakemake's plugin registry finds this package by its name
(``snakemake_logger_plugin_<name>``, a top-level package on the path) and
imports it on every start, so this module imports nothing heavy: MLflow is
loaded by :mod:`.recorder` on the first event worth logging, in the logging thread.

A guest in Snakemake's process: what it knows of the invocation comes from what
Snakemake hands it (its settings, the log records), and it puts back every
environment variable and signal handler it changes when Snakemake closes it.
"""

# No `from __future__ import annotations`: the plugin registry reads the settings' field types as argparse types.
import logging
import os
import signal
import threading
import uuid
from dataclasses import dataclass, field
from typing import Optional

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from mlnb.job_runs import EXPERIMENT_ENV, INVOCATION_ENV, TRACKING_TIMEOUT_ENV, TRACKING_URI_ENV


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    tracking_uri: Optional[str] = field(
        default=None,
        metadata={"help": "MLflow tracking URI (default: the config's mlflow.tracking_uri, "
                          "which the Snakefile exports as " + TRACKING_URI_ENV + ")"},
    )
    experiment: Optional[str] = field(
        default=None,
        metadata={"help": "MLflow experiment (default: the config's mlflow.experiment, "
                          "exported as " + EXPERIMENT_ENV + ")"},
    )
    timeout: Optional[float] = field(
        default=None,
        metadata={"help": "the most seconds a request to a tracking server may take, retries included; past "
                          "it the logger warns and logs nothing more (default: the config's mlflow.timeout, "
                          "exported as " + TRACKING_TIMEOUT_ENV + ")"},
    )


class LogHandler(LogHandlerBase):
    """Hands Snakemake's events to a :class:`~.recorder.Recorder`; logs nothing in a dry run.

    Runs are opened only once Snakemake has planned jobs to execute (``RUN_INFO``
    outside a dry run), so ``--lint``, ``--summary``, ``--report``, ``-n`` and an
    invocation with nothing to do write nothing.
    """

    def __post_init__(self) -> None:
        self.recorder = None
        self.interrupted_by: str | None = None
        self._closed = False
        self._previous_sigint = None
        self.enabled = not self.common_settings.dryrun
        if not self.enabled:
            return
        self.invocation_id = uuid.uuid4().hex
        # Jobs inherit Snakemake's environment (local jobs, and Slurm jobs by default). It is changed here and in
        # close() alone, on Snakemake's main thread, never while it starts jobs: a thread that changes the
        # environment while another starts a process can hand the new process a broken one (EFAULT at exec).
        self._earlier_environment = {name: os.environ.get(name) for name in (INVOCATION_ENV, *self._request_bounds())}
        os.environ.update({INVOCATION_ENV: self.invocation_id, **self._request_bounds()})
        self._watch_interrupt()

    def _request_bounds(self) -> dict[str, str]:
        """MLflow's HTTP settings for the handler's ``timeout`` or an exported MLNB_TRACKING_TIMEOUT, when there is
        one as Snakemake starts (the workflow sets them from ``mlflow.timeout`` while it parses)."""
        timeout = (self.settings.timeout if self.settings else None) or os.environ.get(TRACKING_TIMEOUT_ENV)
        if not timeout:
            return {}
        from mlnb.tracking import request_settings

        return request_settings(float(timeout))

    def _watch_interrupt(self) -> None:
        """Note Ctrl-C (SIGINT) before Snakemake's own handling, to end the invocation KILLED.

        A Snakemake started with SIGINT ignored (``nohup``, a background job of a script) keeps
        ignoring it: watching would make Ctrl-C stop what was started not to stop on it.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.SIG_IGN:
            return
        self._previous_sigint = previous

        def note_interrupt(signum, frame):
            self.interrupted_by = signal.Signals(signum).name
            if callable(previous):
                previous(signum, frame)
            else:
                raise KeyboardInterrupt

        self._note_interrupt = note_interrupt
        signal.signal(signal.SIGINT, note_interrupt)

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "event", None)
        if not self.enabled or event is None:
            return
        if self.recorder is None:
            if event != LogEvent.WORKFLOW_STARTED and event != LogEvent.RUN_INFO:
                return
            from snakemake_logger_plugin_mlflow.recorder import Recorder

            self.recorder = Recorder(
                tracking_uri=self.settings.tracking_uri if self.settings else None,
                experiment=self.settings.experiment if self.settings else None,
                timeout=self.settings.timeout if self.settings else None,
                invocation_id=self.invocation_id,
                interrupted_by=lambda: self.interrupted_by,
            )
        self.recorder.handle(record)

    def close(self) -> None:
        # Snakemake's LoggerManager.stop() closes its handlers, then logging.shutdown() may again.
        if self.enabled and not self._closed:
            self._closed = True
            if self.recorder is not None:
                self.recorder.finish(interrupted_by=self.interrupted_by)
            for name, value in self._earlier_environment.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            if (self._previous_sigint is not None and threading.current_thread() is threading.main_thread()
                    and signal.getsignal(signal.SIGINT) is self._note_interrupt):
                signal.signal(signal.SIGINT, self._previous_sigint)
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True  # every event matters, whatever the console's verbosity

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
