"""Snakemake run with ``--logger mlflow``: the run tree, statuses and metrics read back through the MLflow API.

The heart branch of the offline demo (the real rules and profile), then a tiny
workflow whose stage fails on purpose or is interrupted with SIGINT.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest

from mlnb import tracking
from mlnb.job_runs import TAG_JOB, TAG_KIND

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
HEART = "results/augmented/heart/manifest.csv"
DEMO_ARGS = ("--cores", "2", "--workflow-profile", "workflow/profiles/default",
             "--configfile", "workflow/config/demo.yaml")


def snakemake(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def runs_in(uri: str, experiment: str) -> list:
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], max_results=1000)


def tree(runs) -> tuple:
    """(invocation runs, job runs, stage runs) of a run list."""
    kinds = {"invocation": [], "job": [], None: []}
    for run in runs:
        kinds[run.data.tags.get(TAG_KIND)].append(run)
    return kinds["invocation"], kinds["job"], kinds[None]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's heart branch run once through the default profile (which turns the logger on)."""
    folder = tmp_path_factory.mktemp("demo")
    for name in ("Snakefile", "config.yaml", "workflow", "envs"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / name)
    result = snakemake(HEART, *DEMO_ARGS, cwd=folder)
    assert result.returncode == 0, result.stderr[-5000:]
    return folder, f"sqlite:///{folder / 'results/mlflow/mlflow.db'}"


def test_the_demo_logs_one_invocation_a_child_per_job_and_each_stage_inside_its_job(demo):
    folder, uri = demo
    [invocation], jobs, stages = tree(runs_in(uri, "mlnb-demo"))
    assert invocation.info.status == "FINISHED"
    assert invocation.data.tags["snakemake.targets"] == HEART
    assert invocation.data.tags["snakemake.profile"] == "workflow/profiles/default"
    # jobs planned before the prepare_heart checkpoint; the augmentation jobs join the DAG after it
    assert invocation.data.params["jobs.total"] == "5"
    assert invocation.data.metrics["jobs_done"] == invocation.data.metrics["jobs_total"] == len(jobs)
    assert {run.data.tags["mlflow.parentRunId"] for run in jobs} == {invocation.info.run_id}
    assert all(run.info.status == "FINISHED" for run in jobs)
    cases = sorted(row["case"] for row in csv.DictReader(open(folder / "results/data/heart/index.csv")))
    by_name = {run.info.run_name: run for run in jobs}
    assert sorted(by_name) == sorted(["demo_heart", "init_tracking", "fetch dataset=heart filename=Task02_Heart.tar",
                                      "prepare_heart", "gather_augment",
                                      *(f"augment_case case={case}" for case in cases)])
    first_case = by_name[f"augment_case case={cases[0]}"]
    assert first_case.data.params["rule"] == "augment_case" and first_case.data.params["wildcards.case"] == cases[0]
    gather = by_name["gather_augment"]
    assert gather.data.tags[TAG_JOB] == "results/logs/augment/heart/gather.log"
    # the stage's own run (mlnb.tracking) is the child of its job's run, not a top-level run
    [stage] = stages
    assert stage.info.run_name == "augment-heart" and stage.info.status == "FINISHED"
    assert stage.data.tags["mlflow.parentRunId"] == gather.info.run_id
    for case in cases:
        with open(folder / f"results/benchmarks/augment/heart/{case}.tsv") as handle:
            [row] = csv.DictReader(handle, delimiter="\t")
        metrics = by_name[f"augment_case case={case}"].data.metrics
        assert {key: metrics[f"benchmark.{key}"] for key in ("s", "max_rss", "cpu_time")} == {
            key: float(row[key]) for key in ("s", "max_rss", "cpu_time")}


def test_nothing_to_do_a_dry_run_lint_summary_and_report_log_nothing(demo):
    folder, uri = demo
    before = {run.info.run_id for run in runs_in(uri, "mlnb-demo")}
    for args in ((HEART,), ("-n", "--forcerun", "gather_augment", HEART), ("--lint",), ("--summary", HEART),
                 ("--report", str(folder / "report.html"), HEART)):
        result = snakemake(*args, *DEMO_ARGS, cwd=folder)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-3000:]
        assert {run.info.run_id for run in runs_in(uri, "mlnb-demo")} == before, args


TINY_STAGE = """\
import argparse, sys, time
from mlnb import tracking

parser = argparse.ArgumentParser()
tracking.add_tracking_arguments(parser)
parser.add_argument("--mode")
parser.add_argument("--out")
args = parser.parse_args()
with tracking.tracked_run(args, "tiny-stage", params={"mode": args.mode}) as tracker:
    print("\\n".join(f"{args.mode} line {number}" for number in range(300)), flush=True)
    if args.mode == "fail":
        sys.exit(3)
    if args.mode == "sleep":
        time.sleep(120)
open(args.out, "w").write("done\\n")
"""


@pytest.fixture()
def tiny(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.create_experiment(uri, "tiny")
    (tmp_path / "stage.py").write_text(TINY_STAGE)
    (tmp_path / "Snakefile").write_text(textwrap.dedent(f"""\
        rule all:
            input: expand("out/{{name}}.txt", name=config["names"])

        rule stage:
            output: "out/{{name}}.txt"
            log: "logs/{{name}}.log"
            shell: "export MLNB_JOB={{log:q}}; {sys.executable} stage.py --mode {{wildcards.name}} "
                   "--out {{output}} --tracking-uri {uri} --experiment tiny > {{log}} 2>&1"
        """))
    return tmp_path, uri, ("--cores", "1", "--logger", "mlflow", "--logger-mlflow-tracking-uri", uri,
                           "--logger-mlflow-experiment", "tiny")


def test_a_failing_job_fails_its_run_and_the_invocation_with_the_log_tail_attached(tiny):
    folder, uri, args = tiny
    result = snakemake(*args, "--keep-going", "--config", "names=[ok,fail]", cwd=folder)
    assert result.returncode == 1
    [invocation], jobs, stages = tree(runs_in(uri, "tiny"))
    assert invocation.info.status == "FAILED"
    by_key = {run.data.tags[TAG_JOB]: run for run in jobs}
    assert {key: run.info.status for key, run in by_key.items()} == {"logs/ok.log": "FINISHED",
                                                                   "logs/fail.log": "FAILED"}
    failed = by_key["logs/fail.log"]
    assert "returned non-zero exit status 3" in failed.data.tags["mlnb.error"]
    assert failed.data.tags["snakemake.log"] == "logs/fail.log"
    tail = mlflow.artifacts.load_text(f"{failed.info.artifact_uri}/log_tail/fail.log")
    assert "fail line 299" in tail
    assert {stage.data.tags["mlflow.parentRunId"]: stage.info.status for stage in stages} == {
        by_key["logs/ok.log"].info.run_id: "FINISHED", failed.info.run_id: "FAILED"}


def test_sigint_ends_the_invocation_killed_and_leaves_nothing_running(tiny):
    folder, uri, args = tiny
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen([sys.executable, "-m", "snakemake", *args, "--config", "names=[sleep]"], cwd=folder,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not any(run.info.status == "RUNNING" for run in tree(runs_in(uri, "tiny"))[2]):
            assert process.poll() is None and time.monotonic() < deadline, "the stage never started"
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole foreground group
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    runs = runs_in(uri, "tiny")
    assert {run.info.status for run in runs} == {"KILLED"}
    [invocation], [job], [stage] = tree(runs)
    assert invocation.data.tags["mlnb.stopped"] == "SIGINT"
    assert stage.data.tags["mlflow.parentRunId"] == job.info.run_id
