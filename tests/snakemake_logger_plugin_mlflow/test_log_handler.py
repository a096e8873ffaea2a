"""The handler fed the records Snakemake emits (snakemake_records.py), checked in a real store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import mlflow
import pytest
from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry
from snakemake_interface_logger_plugins.tests import MockOutputSettings

import tests.snakemake_logger_plugin_mlflow.snakemake_records as records
from mlnb import tracking
from mlnb.job_runs import INVOCATION_ENV, TAG_JOB, TAG_KIND
from snakemake_logger_plugin_mlflow import LogHandler, LogHandlerSettings

T0 = 1_796_223_894.0
EXPERIMENT = "tests"
BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory):
    """One SQLite store for the module (creating one runs migrations, seconds); an experiment per test."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture()
def store(shared_store):
    tracking.create_experiment(shared_store, EXPERIMENT)
    yield shared_store
    client = mlflow.MlflowClient(shared_store)
    client.rename_experiment(client.get_experiment_by_name(EXPERIMENT).experiment_id, f"done-{uuid.uuid4().hex}")


def make_handler(uri: str, dryrun: bool = False) -> LogHandler:
    output = MockOutputSettings()
    output.dryrun = dryrun
    return LogHandler(output, LogHandlerSettings(tracking_uri=uri, experiment=EXPERIMENT))


def all_runs(uri: str, experiment: str = EXPERIMENT) -> list:
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], max_results=1000)


def runs_of_kind(runs, kind):
    return [run for run in runs if run.data.tags.get(TAG_KIND) == kind]


def write_benchmark(path: Path, seconds: float, max_rss: float, cpu_time: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK_HEADER + f"{seconds}\t0:00:0{int(seconds)}\t{max_rss}\t20.5\t9.1\t9.9\t0.0\t0.01\t"
                    f"51.2\t{cpu_time}\n")


def feed(handler, *entries):
    for entry in entries:
        handler.handle(entry)  # as the QueueListener does: filter, then emit


def start(workflow_id, cwd, stats):
    return [records.workflow_started(T0, workflow_id, cwd), records.plain(T0 + 0.1, "Building DAG of jobs..."),
            records.resources_info(T0 + 0.2, 2), records.run_info(T0 + 0.3, stats)]


def test_snakemakes_registry_finds_the_plugin_and_its_options():
    plugin = LoggerPluginRegistry().get_plugin("mlflow")
    assert plugin.log_handler is LogHandler
    assert plugin.settings_cls is LogHandlerSettings
    assert plugin.cli_prefix == "logger-mlflow"
    shown = subprocess.run([sys.executable, "-m", "snakemake", "--help"], capture_output=True, text=True,
                           timeout=120).stdout
    assert "--logger-mlflow-tracking-uri" in shown and "--logger-mlflow-experiment" in shown


def test_an_invocation_is_a_parent_run_with_a_finished_child_per_job(store, tmp_path):
    workflow_id = uuid.uuid4()
    for case, (seconds, rss, cpu) in {"1": (1.5, 101.25, 1.2), "2": (2.5, 202.5, 2.2)}.items():
        write_benchmark(tmp_path / f"bench/{case}.tsv", seconds, rss, cpu)
    handler = make_handler(store)
    jobs = []
    for jobid, case in ((1, "1"), (2, "2")):
        jobs += [records.job_started(T0 + jobid, [jobid]),
                 records.job_info(T0 + jobid, jobid, "one", {"case": case}, [f"logs/{case}.log"],
                                  benchmark=str(tmp_path / f"bench/{case}.tsv"), output=[f"out/{case}.txt"],
                                  threads=2, mem_mb=300),
                 records.job_finished(T0 + jobid + 0.75, jobid, "one"),
                 records.progress(T0 + jobid + 0.75, jobid, 3)]
    jobs += [records.job_info(T0 + 4, 3, "all", {}, [], inputs=["out/1.txt", "out/2.txt"]),
             records.job_finished(T0 + 4, 3, "all"), records.progress(T0 + 4, 3, 3)]
    feed(handler, *start(workflow_id, str(tmp_path), {"one": 2, "all": 1, "total": 3}), *jobs)
    handler.close()

    runs = all_runs(store)
    [parent] = runs_of_kind(runs, "invocation")
    assert parent.info.run_name == f"2026-12-02 15:04:54 {str(workflow_id)[:8]}"
    assert parent.info.status == "FINISHED"
    assert parent.data.params == {"jobs.one": "2", "jobs.all": "1", "jobs.total": "3"}
    tags = parent.data.tags
    assert tags["snakemake.workflow_id"] == str(workflow_id)
    assert tags["config_hash"] == "99914b932bd37a50b983c5e7c90ae93b"
    assert tags["snakemake.cores"] == "2"
    assert tags["version.snakemake"] == "9.27.1" and tags["version.mlnb"]
    assert tags["git_commit"]
    history = mlflow.MlflowClient(store).get_metric_history(parent.info.run_id, "jobs_done")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 2.0), (3, 3.0)]

    children = runs_of_kind(runs, "job")
    assert len(children) == 3 == len(runs) - 1
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    assert all(run.info.status == "FINISHED" for run in children)
    by_job = {run.data.tags[TAG_JOB]: run for run in children}
    assert set(by_job) == {"logs/1.log", "logs/2.log", "all:"}  # named by log, else rule:wildcards
    first = by_job["logs/1.log"]
    assert first.info.run_name == "one case=1"
    assert first.data.params["rule"] == "one"
    assert first.data.params["wildcards.case"] == "1"
    assert first.data.params["threads"] == "2"
    assert first.data.params["resources.mem_mb"] == "300"
    assert "resources._cores" not in first.data.params
    assert first.data.params["output"] == '["out/1.txt"]'
    assert first.data.tags["snakemake.reason"] == "Missing output files: out/1.txt"
    assert first.data.tags["snakemake.log"] == "logs/1.log"
    assert (first.info.start_time, first.info.end_time) == (int((T0 + 1) * 1000), int((T0 + 1.75) * 1000))
    assert first.data.metrics["duration_s"] == pytest.approx(0.75)
    assert first.data.metrics["benchmark.s"] == 1.5
    assert first.data.metrics["benchmark.max_rss"] == 101.25
    assert first.data.metrics["benchmark.cpu_time"] == 1.2
    assert by_job["logs/2.log"].data.metrics["benchmark.max_rss"] == 202.5
    assert "benchmark.s" not in by_job["all:"].data.metrics


def test_a_failed_job_is_failed_with_its_error_and_log_tail(store, tmp_path):
    log = tmp_path / "logs" / "2.log"
    log.parent.mkdir()
    log.write_text("".join(f"line {number}\n" for number in range(500)))
    handler = make_handler(store)
    feed(handler, *start(uuid.uuid4(), str(tmp_path), {"one": 2, "total": 2}),
         records.job_info(T0 + 1, 1, "one", {"case": "1"}, ["logs/1.log"]),
         records.job_finished(T0 + 2, 1, "one"), records.progress(T0 + 2, 1, 2),
         records.job_info(T0 + 3, 2, "one", {"case": "2"}, [str(log)]),
         records.error(T0 + 4, "RuleException", "RuleException:\nCalledProcessError in file Snakefile, line 9:\n"
                                                "Command 'mlnb stage' returned non-zero exit status 3."),
         records.job_error(T0 + 4, 2, "one", [str(log)]),
         records.plain(T0 + 4.1, "Exiting because a job execution failed. Look above for error messages"),
         records.error(T0 + 4.2, "WorkflowError", "WorkflowError:\nAt least one job did not complete successfully."))
    handler.close()

    runs = all_runs(store)
    [parent] = runs_of_kind(runs, "invocation")
    assert parent.info.status == "FAILED"
    assert "At least one job did not complete" in parent.data.tags["mlnb.error"]
    by_job = {run.data.tags[TAG_JOB]: run for run in runs_of_kind(runs, "job")}
    assert by_job["logs/1.log"].info.status == "FINISHED"
    failed = by_job[str(log)]
    assert failed.info.status == "FAILED"
    assert failed.info.end_time == int((T0 + 4) * 1000)
    assert "returned non-zero exit status 3" in failed.data.tags["mlnb.error"]
    tail = mlflow.artifacts.load_text(f"{failed.info.artifact_uri}/log_tail/2.log")
    assert tail == "".join(f"line {number}\n" for number in range(300, 500))


def test_sigint_ends_the_invocation_its_open_jobs_and_their_stage_runs_killed(store, tmp_path, monkeypatch):
    handler = make_handler(store)
    feed(handler, *start(uuid.uuid4(), str(tmp_path), {"slow": 1, "total": 1}),
         records.job_info(T0 + 1, 1, "slow", {}, ["logs/slow.log"]))
    client = mlflow.MlflowClient(store)
    [job] = runs_of_kind(all_runs(store), "job")
    stage = client.create_run(job.info.experiment_id, tags={"mlflow.parentRunId": job.info.run_id})
    with pytest.raises(KeyboardInterrupt):
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # Ctrl-C reaches the handler first
    handler.close()

    runs = all_runs(store)
    assert {run.info.status for run in runs} == {"KILLED"}
    [parent] = runs_of_kind(runs, "invocation")
    assert parent.data.tags["mlnb.stopped"] == "SIGINT"
    assert client.get_run(stage.info.run_id).info.status == "KILLED"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert INVOCATION_ENV not in os.environ


def test_a_snakemake_that_ignores_sigint_keeps_ignoring_it(store, tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        handler = make_handler(store)
        feed(handler, *start(uuid.uuid4(), str(tmp_path), {"slow": 1, "total": 1}))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        handler.close()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_jobs_still_running_when_snakemake_stops_without_an_error_are_killed(store, tmp_path):
    handler = make_handler(store)
    feed(handler, *start(uuid.uuid4(), str(tmp_path), {"slow": 2, "total": 2}),
         records.job_info(T0 + 1, 1, "slow", {"n": "1"}, []), records.job_info(T0 + 1, 2, "slow", {"n": "2"}, []),
         records.job_finished(T0 + 2, 1, "slow"), records.progress(T0 + 2, 1, 2))
    handler.close()  # e.g. SIGTERM: Snakemake lets running jobs finish, then stops
    statuses = {run.data.tags.get(TAG_JOB, "invocation"): run.info.status for run in all_runs(store)}
    assert statuses == {"invocation": "KILLED", "slow:n=1": "FINISHED", "slow:n=2": "KILLED"}


@pytest.mark.parametrize("dryrun", [True, False])
def test_a_dry_run_or_an_invocation_with_nothing_to_do_logs_nothing(tmp_path, dryrun):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    handler = make_handler(uri, dryrun=dryrun)
    planned = [records.run_info(T0 + 1, {"one": 1, "total": 1}), records.job_info(T0 + 2, 1, "one", {}, [])]
    feed(handler, records.workflow_started(T0, uuid.uuid4(), str(tmp_path)),
         *(planned if dryrun else [records.plain(T0 + 1, "Nothing to be done (all requested files are present "
                                                         "and up to date).")]))
    handler.close()
    assert not (tmp_path / "fresh").exists()


def test_writes_wait_for_init_tracking_to_create_a_fresh_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    handler = make_handler(uri)
    feed(handler, *start(uuid.uuid4(), str(tmp_path), {"one": 1, "total": 1}),
         records.job_info(T0 + 1, 1, "one", {}, []))
    assert not (tmp_path / "fresh").exists()  # creating it here would race with init_tracking's migrations
    tracking.create_experiment(uri, EXPERIMENT)  # the init_tracking job
    feed(handler, records.job_finished(T0 + 2, 1, "one"))
    statuses = {run.data.tags[TAG_KIND]: run.info.status for run in all_runs(uri)}
    assert statuses == {"invocation": "RUNNING", "job": "FINISHED"}
    feed(handler, records.progress(T0 + 2, 1, 1))
    handler.close()
    assert {run.info.status for run in all_runs(uri)} == {"FINISHED"}


def test_a_store_no_job_created_is_created_when_snakemake_ends(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    handler = make_handler(uri)
    feed(handler, *start(uuid.uuid4(), str(tmp_path), {"one": 1, "total": 1}),
         records.job_info(T0 + 1, 1, "one", {}, []), records.job_finished(T0 + 2, 1, "one"),
         records.progress(T0 + 2, 1, 1))
    handler.close()
    runs = all_runs(uri)
    assert len(runs) == 2 and {run.info.status for run in runs} == {"FINISHED"}


def test_a_store_that_cannot_be_written_never_fails_snakemake(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    handler = make_handler(f"sqlite:///{blocker / 'mlflow.db'}")
    feed(handler, *start(uuid.uuid4(), str(tmp_path), {"one": 1, "total": 1}),
         records.job_info(T0 + 1, 1, "one", {}, []), records.job_finished(T0 + 2, 1, "one"))
    handler.close()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "could not log to MLflow" in line]
    assert len(warnings) == 1 and str(blocker) in warnings[0]


def test_a_record_of_an_unexpected_shape_is_skipped_with_a_warning(store, tmp_path, capsys):
    handler = make_handler(store)
    broken = records.job_info(T0 + 1, 1, "one", {}, [])
    del broken.rule_name
    feed(handler, *start(uuid.uuid4(), str(tmp_path), {"one": 1, "total": 1}), broken,
         records.progress(T0 + 2, 1, 1))
    handler.close()
    assert "job_info: AttributeError" in capsys.readouterr().err
    [parent] = all_runs(store)
    assert parent.info.status == "FINISHED"
