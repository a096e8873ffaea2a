"""A real training process stopped with SIGTERM mid-run resumes where it stopped: same MLflow run,
every step logged once, and the final weights of an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
import sys

import mlflow
import pytest
import torch

from mlnb.training.checkpoint import load_checkpoint

STEPS = 600
VARIANT = ["--new-variant", "--steps", str(STEPS), "--batch-size", "10", "--optimizer", "adam",
           "--schedule", "one-cycle", "--batch-norm", "true", "--dropout", "0.3", "--log-every", "10",
           "--checkpoint-every", "50"]


def command(tmp_path, data, name, uri):
    return [sys.executable, "-m", "mlnb.cli", "train-cnn", "--data", data, "--variant", "resume", "--seed", "5",
            "--out", str(tmp_path / name), "--checkpoint-dir", str(tmp_path / "checkpoints" / name),
            "--device", "cpu", "--threads", "1", "--tracking-uri", uri, "--experiment", "tests", *VARIANT]


def run_ids(uri):
    client = mlflow.MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name("tests").experiment_id])


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_rerun_continues_the_same_run_and_steps(tmp_path, mnist_npz, mlflow_uri,
                                                                            stop_after_first_checkpoint):
    last = tmp_path / "checkpoints" / "stopped" / "last.pt"  # the first, at step 50
    stop_after_first_checkpoint(command(tmp_path, mnist_npz, "stopped", mlflow_uri), last, signal.SIGTERM)
    stopped_at = load_checkpoint(last)["step"]
    assert 50 <= stopped_at < STEPS
    client, (run,) = run_ids(mlflow_uri)
    assert run.info.status == "KILLED" and run.data.tags["mlnb.stopped"] == "SIGTERM"
    assert not (tmp_path / "stopped" / "result.json").exists()

    resumed = subprocess.run(command(tmp_path, mnist_npz, "stopped", mlflow_uri), capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {last} at step {stopped_at}" in resumed.stderr
    client, runs = run_ids(mlflow_uri)
    assert [r.info.run_id for r in runs] == [run.info.run_id]  # the same run, continued
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(10, STEPS + 1, 10))  # none lost, none twice

    uninterrupted = subprocess.run(command(tmp_path, mnist_npz, "uninterrupted", mlflow_uri),
                                   capture_output=True, text=True, timeout=300)
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    ours = torch.load(tmp_path / "stopped" / "model.pt", weights_only=True)
    theirs = torch.load(tmp_path / "uninterrupted" / "model.pt", weights_only=True)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in ours)
    _, runs = run_ids(mlflow_uri)
    (other,) = [r for r in runs if r.info.run_id != run.info.run_id]

    def losses(run_id):
        return [m.value for m in sorted(client.get_metric_history(run_id, "train_loss"), key=lambda m: m.step)]
    assert losses(run.info.run_id) == losses(other.info.run_id)  # the same metrics, step for step
