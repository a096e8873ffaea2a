"""train-mlp stopped with SIGUSR1 mid-run resumes where it stopped: same MLflow run, every epoch's metrics
logged once, and the result and weights of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import mlflow
import numpy as np
import pytest

from mlnb.training.checkpoint import load_checkpoint
from tests.scratch.test_mlp import synthetic_mnist

TRAIN, EPOCHS = 2000, 20  # batches of 1: 40,000 steps, seconds of work, so the signal lands mid-run
STEPS = TRAIN * EPOCHS
EPOCH_METRICS = ("train_error", "test_accuracy", "seconds", "train_images_per_second")


def command(tmp_path, name, uri):
    return [sys.executable, "-m", "mlnb.cli", "train-mlp", "--data", str(tmp_path / "mnist.npz"), "--seed", "5",
            "--out", str(tmp_path / name), "--checkpoint-dir", str(tmp_path / "checkpoints" / name),
            "--checkpoint-every", "100", "--layers", "784", "16", "10", "--batch-size", "1", "--epochs", str(EPOCHS),
            "--tracking-uri", uri, "--experiment", "tests"]


def runs(uri):
    client = mlflow.MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name("tests").experiment_id])


@pytest.mark.slow
def test_sigusr1_checkpoints_and_the_rerun_continues_the_same_run_and_epochs(tmp_path, mlflow_uri,
                                                                            stop_after_first_checkpoint):
    np.savez(tmp_path / "mnist.npz", **synthetic_mnist(train=TRAIN, test=100))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    last = tmp_path / "checkpoints" / "stopped" / "last.pt"  # the first, at step 100
    stop_after_first_checkpoint(command(tmp_path, "stopped", mlflow_uri), last, signal.SIGUSR1, env)
    stopped_at = load_checkpoint(last)["step"]
    assert 100 <= stopped_at < STEPS
    client, (run,) = runs(mlflow_uri)
    assert run.info.status == "KILLED" and run.data.tags["mlnb.stopped"] == "SIGUSR1"
    assert not (tmp_path / "stopped").exists()  # no outputs from a stopped run

    resumed = subprocess.run(command(tmp_path, "stopped", mlflow_uri), capture_output=True, text=True,
                             timeout=300, env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last} at step {stopped_at}" in resumed.stderr
    client, (continued,) = runs(mlflow_uri)
    assert continued.info.run_id == run.info.run_id and continued.info.status == "FINISHED"
    epoch_ends = list(range(TRAIN, STEPS + 1, TRAIN))
    for name in EPOCH_METRICS:  # none lost, none twice
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, name)) == epoch_ends, name
    assert not last.exists() and (tmp_path / "checkpoints" / "stopped" / "final.pt").exists()

    uninterrupted = subprocess.run(command(tmp_path, "uninterrupted", mlflow_uri), capture_output=True, text=True,
                                   timeout=300, env=env)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    result = (tmp_path / "stopped" / "result.json").read_bytes()
    assert result == (tmp_path / "uninterrupted" / "result.json").read_bytes()  # every epoch's error and accuracy
    with (np.load(tmp_path / "stopped" / "model.npz") as ours,
          np.load(tmp_path / "uninterrupted" / "model.npz") as theirs):
        assert ours.files == theirs.files and all(np.array_equal(ours[key], theirs[key]) for key in ours.files)
    _, every = runs(mlflow_uri)
    (other,) = [r for r in every if r.info.run_id != run.info.run_id]

    def history(run_id, name):
        return [m.value for m in sorted(client.get_metric_history(run_id, name), key=lambda m: m.step)]
    for name in ("train_error", "test_accuracy"):  # the same values, epoch for epoch
        assert history(run.info.run_id, name) == history(other.info.run_id, name)
