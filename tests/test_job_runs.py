"""Finding a job's MLflow run from inside the job (mlnb.job_runs)."""

from __future__ import annotations

import argparse

import mlflow
import pytest
from snakemake.iocontainers import Wildcards
from snakemake.utils import format as snakemake_format

from mlnb import tracking
from mlnb.job_runs import (
    INVOCATION_ENV,
    JOB_ENV,
    KIND_INVOCATION,
    KIND_JOB,
    TAG_INVOCATION,
    TAG_JOB,
    TAG_KIND,
    TAG_WORKDIR,
    find_job_run,
    job_key,
    tag_filter,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    return uri, tracking.create_experiment(uri, "jobs")


def open_run(store, kind, **tags):
    uri, experiment = store
    return mlflow.MlflowClient(uri).create_run(experiment, tags={TAG_KIND: kind, **tags}).info.run_id


def find(store, env, wait_seconds=0.0, sleep=None, workdir="/work/a"):
    uri, experiment = store
    return find_job_run(mlflow.MlflowClient(uri), experiment, tracking.retry_locked, env=env, workdir=workdir,
                        wait_seconds=wait_seconds, sleep=sleep or (lambda seconds: None))


def test_a_job_is_named_by_its_log_file_else_by_rule_and_wildcards():
    assert job_key("align", {"shard": "3"}, ["results/logs/align_3.log"]) == "results/logs/align_3.log"
    wildcards = Wildcards(fromdict={"shard": "3", "dataset": "celeba x"})
    assert job_key("align", {"shard": "3", "dataset": "celeba x"}, []) == snakemake_format(
        "{rule}:{wildcards}", rule="align", wildcards=wildcards) == "align:dataset=celeba x,shard=3"


def test_tag_filter_quotes_values_and_keeps_running_runs_only():
    assert tag_filter({"a.b": "x'y"}) == "tags.`a.b` = \"x'y\" and attributes.status = 'RUNNING'"
    with pytest.raises(ValueError, match="both kinds of quote"):
        tag_filter({"a": "'\""})


def test_a_job_finds_the_running_run_of_its_job_in_its_invocation(store):
    mine = open_run(store, KIND_JOB, **{TAG_JOB: "gather:", TAG_INVOCATION: "inv-1"})
    open_run(store, KIND_JOB, **{TAG_JOB: "gather:", TAG_INVOCATION: "inv-0"})  # another invocation's
    open_run(store, KIND_JOB, **{TAG_JOB: "align:shard=1", TAG_INVOCATION: "inv-1"})
    assert find(store, {JOB_ENV: "gather:", INVOCATION_ENV: "inv-1"}) == mine


def test_a_finished_job_run_is_never_found(store):
    uri, _ = store
    done = open_run(store, KIND_JOB, **{TAG_JOB: "done:", TAG_INVOCATION: "inv-2"})
    mlflow.MlflowClient(uri).set_terminated(done, "FINISHED")
    assert find(store, {JOB_ENV: "done:", INVOCATION_ENV: "inv-2"}) is None


def test_without_the_invocation_id_the_running_invocation_of_the_workdir_scopes_the_search(store):
    open_run(store, KIND_INVOCATION, **{TAG_WORKDIR: "/work/b"})
    here = open_run(store, KIND_JOB, **{TAG_JOB: "log:", TAG_WORKDIR: "/work/b"})
    open_run(store, KIND_JOB, **{TAG_JOB: "log:", TAG_WORKDIR: "/work/elsewhere"})
    assert find(store, {JOB_ENV: "log:"}, workdir="/work/b") == here


def test_a_stage_run_by_hand_or_without_the_logger_does_not_wait(store):
    sleeps = []
    assert find(store, {}, wait_seconds=60, sleep=sleeps.append) is None  # no MLNB_JOB: run by hand
    # MLNB_JOB set by the rule, but no invocation is logged in this working directory
    assert find(store, {JOB_ENV: "log:"}, wait_seconds=60, sleep=sleeps.append, workdir="/work/none") is None
    assert sleeps == []


def test_a_job_waits_for_the_logger_to_open_its_run(store):
    env = {JOB_ENV: "late:", INVOCATION_ENV: "inv-3"}
    opened = []

    def logger_catches_up(seconds):
        if len(opened) == 0 and seconds:
            opened.append(open_run(store, KIND_JOB, **{TAG_JOB: "late:", TAG_INVOCATION: "inv-3"}))

    assert find(store, env, wait_seconds=60, sleep=logger_catches_up) == opened[0]


def test_a_job_gives_up_waiting_after_the_bound(store, caplog):
    assert find(store, {JOB_ENV: "never:", INVOCATION_ENV: "inv-4"}, wait_seconds=0.0) is None
    assert "no MLflow run of job never:" in caplog.text


def test_a_stage_run_in_a_logged_job_nests_in_the_jobs_run(store, monkeypatch):
    uri, _ = store
    job = open_run(store, KIND_JOB, **{TAG_JOB: "results/logs/stage.log", TAG_INVOCATION: "inv-5"})
    monkeypatch.setenv(JOB_ENV, "results/logs/stage.log")
    monkeypatch.setenv(INVOCATION_ENV, "inv-5")
    args = argparse.Namespace(tracking_uri=uri, experiment="jobs", run_name=None, stage_config=None, input_file=[])
    with tracking.tracked_run(args, "stage", params={}) as tracker:
        pass
    assert mlflow.MlflowClient(uri).get_run(tracker.run_id).data.tags["mlflow.parentRunId"] == job
