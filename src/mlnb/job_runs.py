"""How a Snakemake job's MLflow run is named and found.

The logger plugin (``snakemake --logger mlflow``, package
``snakemake_logger_plugin_mlflow``) runs inside Snakemake on the submitting
machine: it opens one run per pipeline invocation and a child run per job,
tagged with the job's name (:func:`job_key`). The job itself may run anywhere
(a Slurm node writing into the same store), so its stage run finds its job's
run by those tags: the rule's shell command names the job in ``MLNB_JOB`` by
its log file (``job_shell`` in ``workflow/rules/common.smk``), the plugin passes its
invocation id in ``MLNB_INVOCATION_ID`` (inherited by local jobs and by Slurm
jobs, which export the submitting environment), and :func:`find_job_run` looks
for the RUNNING job run with that name. Without the invocation id it looks in
the invocation RUNNING in this working directory (Snakemake locks a working
directory for one run at a time).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence

log = logging.getLogger(__name__)

#: Set by a rule's shell command: the job's name, its log file (see :func:`job_key`).
JOB_ENV = "MLNB_JOB"
#: Set by the logger plugin in Snakemake's environment: the invocation's id.
INVOCATION_ENV = "MLNB_INVOCATION_ID"
#: Set by the Snakefile: the config's tracking URI, experiment and timeout, the plugin's defaults.
TRACKING_URI_ENV = "MLNB_TRACKING_URI"
EXPERIMENT_ENV = "MLNB_EXPERIMENT"
TRACKING_TIMEOUT_ENV = "MLNB_TRACKING_TIMEOUT"

TAG_KIND = "mlnb.kind"  # "invocation" or "job"
TAG_JOB = "mlnb.job"
TAG_INVOCATION = "mlnb.invocation"
TAG_WORKDIR = "mlnb.workdir"
KIND_INVOCATION = "invocation"
KIND_JOB = "job"

#: How long a stage waits for the plugin to open its job's run (the plugin writes
#: asynchronously, and waits for a fresh store to be created by init_tracking).
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.5


def job_key(rule: str, wildcards: Mapping[str, str], logs: Sequence[str]) -> str:
    """A job's name: its log file(s), which Snakemake keeps unique per job and a shell command knows as ``{log}``.

    A job without a log is named ``rule:name=value,...`` (no shell command of
    such a job can name itself: the linter refuses ``{rule}`` in a shell command).
    """
    if logs:
        return " ".join(logs)
    return f"{rule}:" + ",".join(f"{name}={value}" for name, value in sorted(wildcards.items()))


def tag_filter(tags: Mapping[str, str]) -> str:
    """An MLflow search filter matching runs that carry every tag, RUNNING ones only."""
    clauses = [f"tags.`{name}` = {_quoted(value)}" for name, value in tags.items()]
    return " and ".join([*clauses, "attributes.status = 'RUNNING'"])


def _quoted(value: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"cannot search MLflow for a tag value with both kinds of quote: {value!r}")


def running_runs(client, experiment_id: str, tags: Mapping[str, str], retry: Callable) -> list:
    """RUNNING runs with all ``tags``, newest first."""
    return retry(client.search_runs, [experiment_id], filter_string=tag_filter(tags),
                 max_results=10, order_by=["attributes.start_time DESC"])


def find_job_run(client, experiment_id: str, retry: Callable, env: Mapping[str, str] = os.environ,
                 workdir: str | None = None, wait_seconds: float = WAIT_SECONDS,
                 sleep: Callable[[float], None] = time.sleep) -> str | None:
    """The id of the RUNNING run of the job named in ``MLNB_JOB``, or None (run by hand, no logger).

    Waits up to ``wait_seconds`` for the plugin to open it while the invocation is
    known to be logged (its id is in the environment, or its run is RUNNING here).
    """
    key = env.get(JOB_ENV)
    if not key:
        return None
    invocation = env.get(INVOCATION_ENV)
    scope = {TAG_INVOCATION: invocation} if invocation else {TAG_WORKDIR: workdir or os.getcwd()}
    deadline = time.monotonic() + wait_seconds
    while True:
        runs = running_runs(client, experiment_id, {TAG_KIND: KIND_JOB, TAG_JOB: key, **scope}, retry)
        if runs:
            return runs[0].info.run_id
        logged = invocation or running_runs(client, experiment_id, {TAG_KIND: KIND_INVOCATION, **scope}, retry)
        if not logged:
            return None
        if time.monotonic() >= deadline:
            log.warning("no MLflow run of job %s appeared within %.0f s: logging a top-level run", key,
                        wait_seconds)
            return None
        sleep(POLL_SECONDS)
