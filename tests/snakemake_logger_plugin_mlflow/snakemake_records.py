"""LogRecords shaped as Snakemake 9 emits them (fields read from snakemake's workflow.py, jobs.py,
scheduling/job_scheduler.py and exceptions.py, and checked against a real run's records)."""

from __future__ import annotations

import logging
import uuid

from snakemake.iocontainers import ResourceList
from snakemake_interface_logger_plugins.common import LogEvent


def record(event: LogEvent | None, message: str | None, created: float, level: int = logging.INFO,
           **fields) -> logging.LogRecord:
    entry = logging.LogRecord("snakemake.logging", level, "workflow.py", 1, message, None, None)
    entry.created = created
    if event is not None:
        entry.event = event
    entry.__dict__.update(fields)
    return entry


def workflow_started(created: float, workflow_id: uuid.UUID, cwd: str) -> logging.LogRecord:
    return record(LogEvent.WORKFLOW_STARTED, "Workflow has started!", created,
                  datetime="2026-12-02 15:04:54", snakemake_version="9.27.1", platform="Linux", host="vm",
                  user="root", python_version="3.11.7", cmd="snakemake -c1 --logger mlflow", basedir=cwd,
                  rundir=cwd, cwd=cwd, configfiles=[], snakefile_main=f"{cwd}/Snakefile",
                  snakefile="workflow.py", workflow_id=workflow_id,
                  config_md5="99914b932bd37a50b983c5e7c90ae93b")


def resources_info(created: float, cores: int) -> logging.LogRecord:
    return record(LogEvent.RESOURCES_INFO, f"Provided cores: {cores}", created, cores=cores)


def run_info(created: float, stats: dict[str, int]) -> logging.LogRecord:
    return record(LogEvent.RUN_INFO, "Job stats: ...", created, stats=stats)


def job_started(created: float, jobids: list[int]) -> logging.LogRecord:
    return record(LogEvent.JOB_STARTED, f"Execute {len(jobids)} jobs...", created, jobs=jobids)


def job_info(created: float, jobid: int, rule: str, wildcards: dict[str, str], log: list[str],
             benchmark: str | None = None, output: list[str] = (), inputs: list[str] = (),
             threads: int = 1, mem_mb: int = 100) -> logging.LogRecord:
    resources = ResourceList(fromdict={"_cores": threads, "_nodes": 1, "mem_mb": mem_mb,
                                       "mem_mib": int(mem_mb * 0.95), "tmpdir": "/tmp"})
    return record(LogEvent.JOB_INFO, f" Rule: {rule}, Jobid: {jobid}", created,
                  jobid=jobid, rule_msg=None, rule_name=rule, local=True, input=list(inputs),
                  output=list(output), log=list(log), benchmark=benchmark, wildcards=wildcards,
                  reason=f"Missing output files: {', '.join(output)}", resources=resources, priority=0,
                  threads=threads, indent=False, is_checkpoint=False, printshellcmd=True, is_handover=False,
                  shellcmd="mlnb stage")


def job_finished(created: float, jobid: int, rule: str) -> logging.LogRecord:
    return record(LogEvent.JOB_FINISHED, f"Finished jobid: {jobid} (Rule: {rule})", created, job_id=jobid)


def progress(created: float, done: int, total: int) -> logging.LogRecord:
    return record(LogEvent.PROGRESS, None, created, done=done, total=total)


def error(created: float, exception: str, message: str) -> logging.LogRecord:
    return record(LogEvent.ERROR, message, created, level=logging.ERROR, exception=exception)


def job_error(created: float, jobid: int, rule: str, log: list[str]) -> logging.LogRecord:
    return record(LogEvent.JOB_ERROR, f"Error in rule {rule}, jobid: {jobid}", created, level=logging.ERROR,
                  rule_name=rule, rule_msg=None, jobid=jobid, input=[], output=[], log=list(log),
                  conda_env=None, container_img=None, aux={}, indent=False, shellcmd="mlnb stage")


def plain(created: float, message: str) -> logging.LogRecord:
    """A record without an event (most of Snakemake's console lines)."""
    return record(None, message, created)
