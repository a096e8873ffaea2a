"""Every training command (and the reports) logs through a real tracking server, with the records MLflow's users
expect; a server that refuses or never answers costs a command and the logger plugin at most the timeout.

One ``mlflow server`` on 127.0.0.1 for the module (tests/mlflow_server.py); the runs are made once, in this
process, and each test reads back what it needs through MLflow's own client (slow: a server, and the DCGAN's
FID with Inception-v3). The dead servers are quick.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
from snakemake_interface_logger_plugins.tests import MockOutputSettings

import tests.snakemake_logger_plugin_mlflow.snakemake_records as records
from mlnb import cli, tracking
from mlnb.cnn.network import BlogCNN
from mlnb.io import file_md5
from snakemake_logger_plugin_mlflow import LogHandler, LogHandlerSettings
from snakemake_logger_plugin_mlflow.recorder import Recorder
from tests.mlflow_server import frozen, mlflow_server, refusing_server, silent_server
from tests.segment.cases import write_set
from tests.snakemake_logger_plugin_mlflow.test_standalone import TINY_SNAKEFILE
from tests.synthetic_mnist import write_mnist_npz

EXPERIMENT = "cluster"
SAMPLE = ["--system-metrics-interval", "0.2"]  # system metrics even from runs of a second or two
FACES_SETTINGS = {"z_dim": 8, "gf": 4, "df": 4, "batch_size": 8, "epochs": 2, "sample_every": 4, "fid_samples": 4,
                  "fid_checks": 1, "face_rate_samples": 0, "turing_images": 4}
TIMEOUT = 3.0
T0 = 1_796_223_894.0
MARGIN = 10.0  # what a command does besides waiting for the server, on a busy machine


SEGMENT_SETTINGS = {"batch_size": 2, "patch_size": [8, 16, 16], "base_width": 4, "depth": 2, "steps": 6,
                    "validation_every": 3, "validation_patches": 2, "folds": 2}


def commands(folder, data, faces, stats, url) -> dict[str, list[str]]:
    """Each command's arguments, run name first; the reports read what the training commands wrote."""
    tracked = ["--tracking-uri", url, "--experiment", EXPERIMENT]
    return {
        "gates-xor": ["train-gates", "--gate", "XOR", "--seed", "7", "--out", str(folder / "gates"),
                      "--seeds", "1", "--max-iterations", "300", *SAMPLE, *tracked],
        "mlp-numpy": ["train-mlp", "--data", data, "--seed", "1", "--out", str(folder / "mlp"),
                      "--checkpoint-dir", str(folder / "mlp-ckpt"), "--settings",
                      json.dumps({"layers": [784, 16, 10], "epochs": 2}), *SAMPLE, *tracked],
        "cnn-quick": ["train-cnn", "--data", data, "--variant", "quick", "--new-variant", "--seed", "3",
                      "--out", str(folder / "cnn"), "--checkpoint-dir", str(folder / "cnn-ckpt"), "--device", "cpu",
                      "--steps", "20", "--batch-size", "20", *SAMPLE, *tracked],
        "dcgan-tiny": ["train-dcgan", "--data", faces, "--dataset", "tiny", "--real-stats", stats,
                       "--out", str(folder / "dcgan"), "--checkpoint-dir", str(folder / "dcgan-ckpt"), "--seed", "7",
                       "--settings", json.dumps(FACES_SETTINGS), "--device", "cpu", "--threads", "1", *SAMPLE,
                       *tracked],
        "segment-none-fold0": ["train-segment", "--data", str(folder / "pack"), "--folds-file",
                               str(folder / "pack" / "folds.json"), "--arm", "none", "--fold", "0", "--seed", "5",
                               "--out", str(folder / "segment"), "--checkpoint-dir", str(folder / "segment-ckpt"),
                               "--settings", json.dumps(SEGMENT_SETTINGS), "--device", "cpu", "--threads", "1",
                               *SAMPLE, *tracked],
        "gates-report": ["report-gates", str(folder / "gates" / "XOR.json"), "--out", str(folder / "gates.md"),
                         *tracked],
        "cnn-ladder": ["report-ladder", str(folder / "cnn" / "result.json"), "--out", str(folder / "ladder.md"),
                       *tracked],
    }


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Every command run once against one server: (url, {run name: run}, the folder of their inputs and outputs)."""
    from mlnb.dcgan.fid import FeatureStats

    folder = tmp_path_factory.mktemp("server-runs")
    data = write_mnist_npz(folder / "mnist.npz")
    rng = np.random.default_rng(0)
    faces = np.repeat(np.repeat(rng.integers(0, 256, (16, 4, 4, 3), dtype=np.uint8), 4, axis=1), 4, axis=2)
    np.save(folder / "faces.npy", faces)
    FeatureStats.of(rng.normal(size=(6, 2048))).save(folder / "stats.npz")
    assert cli.main(["prepare-segment", "--index", str(write_set(folder, 4)), "--out", str(folder / "pack"),
                     "--folds", "2", "--seed", "5"]) == 0
    with mlflow_server(folder) as url:
        assert cli.main(["init-tracking", "--tracking-uri", url, "--experiment", EXPERIMENT,
                         "--out", str(folder / "experiment.json")]) == 0
        for name, argv in commands(folder, data, str(folder / "faces.npy"), str(folder / "stats.npz"), url).items():
            assert cli.main(argv) == 0, name
        client = mlflow.MlflowClient(url)
        runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
        yield url, {run.info.run_name: run for run in runs}, folder


TRAINING = ["gates-xor", "mlp-numpy", "cnn-quick", "dcgan-tiny", "segment-none-fold0"]
ALL = [*TRAINING, "gates-report", "cnn-ladder"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_every_command_logs_a_finished_run_through_the_server(logged, name):
    url, runs, _ = logged
    assert runs[name].info.status == "FINISHED"
    assert runs[name].info.artifact_uri.startswith("mlflow-artifacts:")  # through the server, not a local path


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_every_run_names_its_user_and_source(logged, name):
    tags = logged[1][name].data.tags
    assert tags["mlflow.user"] and tags["mlflow.user"] != "unknown"
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] == f"mlnb {cli_command(name)}"
    commit = tags["mlflow.source.git.commit"]
    assert len(commit) == 40 and tags["git_commit"] in (commit, f"{commit}-dirty")


def cli_command(name: str) -> str:
    return {"gates-xor": "train-gates", "mlp-numpy": "train-mlp", "cnn-quick": "train-cnn", "dcgan-tiny": "train-dcgan",
            "segment-none-fold0": "train-segment", "gates-report": "report-gates",
            "cnn-ladder": "report-ladder"}[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINING)
def test_training_runs_record_system_metrics(logged, name):
    metrics = logged[1][name].data.metrics
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= metrics.keys()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["gates-report", "cnn-ladder"])
def test_reports_record_no_system_metrics(logged, name):
    assert not any(key.startswith("system/") for key in logged[1][name].data.metrics)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "dataset", "context"), [("mlp-numpy", "mnist", "training"),
                                                          ("cnn-quick", "mnist", "training"),
                                                          ("dcgan-tiny", "images", "training"),
                                                          ("dcgan-tiny", "real_stats", "training"),
                                                          ("segment-none-fold0", "pack", "training"),
                                                          ("segment-none-fold0", "folds", "training"),
                                                          ("cnn-ladder", "quick", "evaluation")])
def test_inputs_are_datasets_with_their_checksum_source_and_context(logged, name, dataset, context):
    run = logged[1][name]
    inputs = {entry.dataset.name: entry for entry in run.inputs.dataset_inputs}
    found = inputs[dataset]
    source = json.loads(found.dataset.source)["uri"]
    assert found.dataset.digest == run.data.params[f"input_md5.{dataset}"] == file_md5(source.removeprefix("file://"))
    assert {tag.key: tag.value for tag in found.tags}["mlflow.data.context"] == context


@pytest.mark.slow
def test_the_cnn_is_an_mlflow_pytorch_model_that_classifies_a_batch(logged):
    url, runs, folder = logged
    run = runs["cnn-quick"]
    [output] = run.outputs.model_outputs
    model = mlflow.MlflowClient(url).get_logged_model(output.model_id)
    assert (model.name, model.source_run_id, model.experiment_id) == ("cnn", run.info.run_id, run.info.experiment_id)
    assert run.info.status == "FINISHED"  # logging the model left it running until the command ended it
    mlflow.set_tracking_uri(url)
    loaded = mlflow.pytorch.load_model(f"models:/{model.model_id}")
    signature = mlflow.models.get_model_info(f"models:/{model.model_id}").signature
    assert tuple(signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 1, 28, 28)

    batch = torch.from_numpy(np.load(folder / "mnist.npz")["x_test"][:16, None].astype(np.float32) / 255)
    saved = BlogCNN()
    saved.load_state_dict(torch.load(folder / "cnn" / "model.pt", weights_only=True))
    saved.eval()
    with torch.no_grad():
        assert torch.equal(loaded(batch).argmax(1), saved(batch).argmax(1))


# -- a server that is down, or never answers --------------------------------------------------------------------

DEAD = {"refused": refusing_server, "silent": silent_server}


@pytest.mark.parametrize("server", DEAD)
def test_a_command_gives_up_on_a_dead_server_within_the_timeout_with_one_line(server, tmp_path, caplog, capsys):
    with DEAD[server]() as url:
        started = time.monotonic()
        code = cli.main(["train-gates", "--gate", "AND", "--seed", "1", "--out", str(tmp_path), "--seeds", "1",
                         "--max-iterations", "10", "--tracking-uri", url, "--experiment", EXPERIMENT,
                         "--tracking-timeout", str(TIMEOUT)])
        elapsed = time.monotonic() - started
    assert code == 2 and elapsed < TIMEOUT + MARGIN
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    reason = "Connection refused" if server == "refused" else "timed out"
    assert errors == [f"MLflow tracking server {url}: {reason} (each request is given up after {TIMEOUT:g} s: "
                      "--tracking-timeout, config key mlflow.timeout)"]
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("server", DEAD)
def test_the_logger_gives_up_on_a_dead_server_within_the_timeout_with_one_warning(server, tmp_path, capsys):
    with DEAD[server]() as url:
        started = time.monotonic()
        handler = LogHandler(MockOutputSettings(), LogHandlerSettings(tracking_uri=url, experiment=EXPERIMENT,
                                                                      timeout=TIMEOUT))
        jobs = [entry for jobid in (1, 2, 3) for entry in (
            records.job_info(T0 + jobid, jobid, "one", {"n": str(jobid)}, []),
            records.job_finished(T0 + jobid + 0.5, jobid, "one"), records.progress(T0 + jobid + 0.5, jobid, 3))]
        for entry in (records.workflow_started(T0, uuid.uuid4(), str(tmp_path)),
                      records.run_info(T0, {"one": 3, "total": 3}), *jobs):
            handler.handle(entry)
        handler.close()
        elapsed = time.monotonic() - started
    assert elapsed < TIMEOUT + MARGIN
    warnings = [line for line in capsys.readouterr().err.splitlines() if "could not log to MLflow" in line]
    assert len(warnings) == 1 and url in warnings[0] and "nothing more is logged" in warnings[0]


def test_the_logger_takes_its_timeout_from_the_environment_the_workflow_sets(monkeypatch):
    # what common.smk exports while it parses: the timeout, and MLflow's request settings for it
    for name, value in {"MLNB_TRACKING_TIMEOUT": "4.5", **tracking.request_settings(4.5)}.items():
        monkeypatch.setenv(name, value)
    recorder = Recorder(tracking_uri="http://127.0.0.1:1", experiment="x", invocation_id="i")
    recorder.handle(records.run_info(T0, {"total": 1}))
    assert recorder.timeout == 4.5


@pytest.mark.slow
def test_snakemake_with_the_logger_ends_soon_after_its_jobs_when_the_server_never_answers(tmp_path):
    """It finished its jobs in 0.23 s and was still alive 29 min later, each request retried for minutes."""
    (tmp_path / "Snakefile").write_text(TINY_SNAKEFILE)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with silent_server() as url:
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--logger", "mlflow",
                                 "--logger-mlflow-tracking-uri", url, "--logger-mlflow-timeout", str(TIMEOUT)],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        elapsed = time.monotonic() - started
    assert result.returncode == 0 and (tmp_path / "done.txt").exists(), result.stderr[-3000:]
    assert elapsed < TIMEOUT + 60  # Snakemake's own start and end take seconds here
    warnings = [line for line in result.stderr.splitlines() if "could not log to MLflow" in line]
    assert len(warnings) == 1 and "timed out" in warnings[0]


SLEEPING_JOB = """\
rule all:
    output:
        "done.txt"
    shell:
        "touch started.txt; sleep 120; touch {output}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_snakemake_stops_on_a_signal_when_its_server_died_mid_run(tmp_path, signum):
    """The invocation's and the job's runs are open on the server when it stops answering; Ctrl-C (SIGINT to the
    foreground group) or SIGTERM to the group (a service manager, Slurm ending a job step) still ends Snakemake
    soon after its job, within the timeout of the logger's writes. (SIGTERM to Snakemake alone lets its running
    jobs finish first: Snakemake's own way.)"""
    (tmp_path / "Snakefile").write_text(SLEEPING_JOB)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with mlflow_server(tmp_path) as url:
        tracking.create_experiment(url, EXPERIMENT)  # as init_tracking does: the logger writes once it is there
        process = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1", "--logger", "mlflow",
                                    "--logger-mlflow-tracking-uri", url, "--logger-mlflow-experiment", EXPERIMENT,
                                    "--logger-mlflow-timeout", str(TIMEOUT)], cwd=tmp_path, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            client = mlflow.MlflowClient(url)
            deadline = time.monotonic() + 120
            while not ((tmp_path / "started.txt").exists() and len(running_runs(client)) == 2):
                assert process.poll() is None and time.monotonic() < deadline, "the job never started"
                time.sleep(0.2)
            with frozen(url):
                started = time.monotonic()
                os.killpg(process.pid, signum)
                process.wait(timeout=TIMEOUT * 4 + 60)
                elapsed = time.monotonic() - started
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode != 0 and not (tmp_path / "done.txt").exists()
    assert elapsed < 2 * TIMEOUT + MARGIN + 20  # Snakemake's own cancelling takes seconds here
    warnings = [line for line in process.stderr.read().splitlines() if "could not log to MLflow" in line]
    assert len(warnings) == 1 and url in warnings[0]


def running_runs(client) -> list:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
