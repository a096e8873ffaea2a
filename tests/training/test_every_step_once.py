"""Every step once, whatever stops a training command, checked through MLflow's own client: a job killed
(SIGKILL) while writing a checkpoint, a tracking store that goes away mid-run, a second job on the same
checkpoint folder; and a run whose loss becomes NaN stops with one line and is recorded FAILED."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys

import mlflow
import pytest
import torch

from mlnb import cli
from mlnb.training.checkpoint import load_checkpoint
from tests.dcgan.conftest import inputs  # noqa: F401 - the DCGAN's tiny faces, a fixture
from tests.dcgan.test_train_cli import SETTINGS as DCGAN_SETTINGS
from tests.dcgan.test_train_cli import argv as dcgan_argv
from tests.training.test_checkpoint import another_job_on

STEPS, LOG_EVERY, CHECKPOINT_EVERY = 60, 5, 20
LOGGED_STEPS = list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))


def cnn_command(tmp_path, data, name, uri, **variant):
    settings = {"variants": {"q": {"steps": STEPS, "batch_size": 10, "optimizer": "adam", **variant}}}
    return ["train-cnn", "--data", data, "--variant", "q", "--settings", json.dumps(settings), "--seed", "5",
            "--out", str(tmp_path / name), "--checkpoint-dir", str(tmp_path / "checkpoints" / name),
            "--device", "cpu", "--threads", "1", "--log-every", str(LOG_EVERY),
            "--checkpoint-every", str(CHECKPOINT_EVERY), "--tracking-uri", uri, "--experiment", "tests"]


def runs(uri):
    client = mlflow.MlflowClient(uri)
    return client, client.search_runs([client.get_experiment_by_name("tests").experiment_id])


def logged_steps(client, run_id) -> dict[str, list[int]]:
    """Every metric's logged steps, in order, repeats kept (system metrics aside: sampled, not stepped)."""
    keys = [key for key in client.get_run(run_id).data.metrics if not key.startswith("system/")]
    return {key: sorted(point.step for point in client.get_metric_history(run_id, key)) for key in keys}


def losses(client, run_id) -> list[float]:
    return [point.value for point in sorted(client.get_metric_history(run_id, "train_loss"), key=lambda p: p.step)]


def assert_like_an_uninterrupted_run(tmp_path, data, uri, run_id):
    """``run_id`` (the stopped and resumed run, its outputs in tmp_path/run) logged each step once, the
    same steps and losses as an uninterrupted run, and ended with its weights."""
    assert cli.main(cnn_command(tmp_path, data, "uninterrupted", uri)) == 0
    client, every = runs(uri)
    (reference,) = [run.info.run_id for run in every if run.info.run_id != run_id]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert logged_steps(client, run_id) == logged_steps(client, reference)
    assert logged_steps(client, run_id)["train_loss"] == LOGGED_STEPS  # none twice, none lost
    assert losses(client, run_id) == losses(client, reference)
    ours = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    theirs = torch.load(tmp_path / "uninterrupted" / "model.pt", weights_only=True)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[key], theirs[key]) for key in ours)


# A training command killed (SIGKILL) while writing the checkpoint of step argv[1]: its temporary file is on
# disk, not yet renamed over last.pt. Its tracker writes every metric at once, as when its flush interval has
# just passed, so the store holds steps the last checkpoint has not seen.
KILLED_WHILE_CHECKPOINTING = """
import os, signal, sys
import torch
from mlnb import cli, tracking

kill_at, log_metrics, save = int(sys.argv[1]), tracking.Tracker.log_metrics, torch.save

def log_and_flush(self, metrics, step=None):
    log_metrics(self, metrics, step)
    self.flush()

def save_and_die(state, handle, *args, **kwargs):
    save(state, handle, *args, **kwargs)
    if isinstance(state, dict) and state.get("step") == kill_at:
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)

tracking.Tracker.log_metrics, torch.save = log_and_flush, save_and_die
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.slow  # a training command started in a new process, then two more runs
def test_a_job_killed_while_checkpointing_resumes_and_logs_every_step_once(tmp_path, mnist_npz, mlflow_uri):
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_CHECKPOINTING, "40",
                             *cnn_command(tmp_path, mnist_npz, "run", mlflow_uri)],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    folder = tmp_path / "checkpoints" / "run"
    assert load_checkpoint(folder / "last.pt")["step"] == 20
    assert len(list(folder.glob(".last.pt.*.part.pt"))) == 1  # the killed writer's temporary file
    client, (run,) = runs(mlflow_uri)
    assert logged_steps(client, run.info.run_id)["train_loss"] == LOGGED_STEPS[:8]  # steps 5-40: past step 20

    assert cli.main(cnn_command(tmp_path, mnist_npz, "run", mlflow_uri)) == 0  # resumes from step 20
    assert sorted(path.name for path in folder.iterdir()) == [".lock", "final.pt"]  # the stray is gone
    assert_like_an_uninterrupted_run(tmp_path, mnist_npz, mlflow_uri, run.info.run_id)


class StoreDown(Exception):
    """The tracking store is unreachable."""


def test_a_tracking_outage_fails_the_run_before_its_checkpoint_and_the_rerun_logs_every_step_once(
        tmp_path, mnist_npz, mlflow_uri, monkeypatch):
    log_batch = mlflow.MlflowClient.log_batch

    def down_after_step_20(self, run_id, metrics=(), *args, **kwargs):
        if any(point.step > 20 for point in metrics):
            raise StoreDown("the tracking store is unreachable")
        return log_batch(self, run_id, metrics, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "log_batch", down_after_step_20)
    with pytest.raises(StoreDown):
        cli.main(cnn_command(tmp_path, mnist_npz, "run", mlflow_uri))
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "checkpoints" / "run" / "last.pt")["step"] == 20  # not ahead of the store
    client, (run,) = runs(mlflow_uri)
    assert run.info.status == "FAILED"
    assert logged_steps(client, run.info.run_id)["train_loss"] == LOGGED_STEPS[:4]

    assert cli.main(cnn_command(tmp_path, mnist_npz, "run", mlflow_uri)) == 0
    assert_like_an_uninterrupted_run(tmp_path, mnist_npz, mlflow_uri, run.info.run_id)


def test_a_second_job_on_a_checkpoint_folder_is_refused_with_one_line(tmp_path, mnist_npz, mlflow_uri, caplog):
    folder = tmp_path / "checkpoints" / "run"
    job = another_job_on(folder)
    try:
        assert cli.main(cnn_command(tmp_path, mnist_npz, "run", mlflow_uri)) == 2
    finally:
        job.kill()
        job.wait()
    (line,) = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert line.startswith(f"checkpoint folder {folder} is in use by another job")
    assert runs(mlflow_uri)[1] == []  # refused before it touched the MLflow run
    assert cli.main(cnn_command(tmp_path, mnist_npz, "run", mlflow_uri)) == 0  # the killed job left no lock


def assert_diverged_and_failed(code, caplog, uri, out, step_words):
    """Exit 2, one line naming the steps, the MLflow run FAILED, no outputs."""
    assert code == 2
    (line,) = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert f"training diverged in {step_words}" in line and "\n" not in line
    _, (run,) = runs(uri)
    assert run.info.status == "FAILED"
    assert not out.exists() or not any(out.iterdir())


def test_a_cnn_whose_loss_becomes_nan_stops_and_its_run_fails(tmp_path, mnist_npz, mlflow_uri, caplog):
    code = cli.main(cnn_command(tmp_path, mnist_npz, "run", mlflow_uri, optimizer="sgd", learning_rate=1e9))
    assert_diverged_and_failed(code, caplog, mlflow_uri, tmp_path / "run", "steps 1-5 (train_loss nan")


def test_an_mlp_whose_error_becomes_nan_stops_and_its_run_fails(tmp_path, mnist_npz, mlflow_uri, caplog):
    code = cli.main(["train-mlp", "--data", mnist_npz, "--out", str(tmp_path / "run"), "--checkpoint-dir",
                     str(tmp_path / "checkpoints"), "--layers", "784", "16", "10", "--transfers", "linear", "linear",
                     "--learning-rate", "1e9", "--epochs", "2", "--tracking-uri", mlflow_uri, "--experiment", "tests"])
    assert_diverged_and_failed(code, caplog, mlflow_uri, tmp_path / "run", "step 20 (train_error nan")


def test_a_dcgan_whose_loss_becomes_nan_stops_before_its_fid(inputs, tmp_path, mlflow_uri, caplog):  # noqa: F811
    run = tmp_path / "run"
    command = [*dcgan_argv(inputs, run, {**DCGAN_SETTINGS, "learning_rate": 1e9}), "--tracking-uri", mlflow_uri,
               "--experiment", "tests"]
    assert_diverged_and_failed(cli.main(command), caplog, mlflow_uri, run / "out", "step 2 (")
