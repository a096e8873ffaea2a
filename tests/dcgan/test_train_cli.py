"""mlnb train-dcgan end to end on tiny synthetic faces (16 px, narrow networks, the CPU; ``inputs`` in conftest.py).

Deterministic for a seed; a run stopped by SIGTERM mid-way and resumed ends with
exactly the weights of an uninterrupted run, in one MLflow run, nothing logged twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import mlflow
import pytest
import torch
from PIL import Image

from mlnb import cli
from mlnb.training.checkpoint import load_checkpoint
from mlnb.training.launch import torchrun_options

pytestmark = pytest.mark.slow  # each run computes an FID (Inception-v3 at 299 px)

SETTINGS = {"z_dim": 8, "gf": 4, "df": 4, "batch_size": 8, "epochs": 3, "sample_every": 5, "fid_samples": 4,
            "fid_checks": 1, "face_rate_samples": 0, "turing_images": 4}


def argv(inputs, run, settings=SETTINGS, *extra, seed=7):
    return ["train-dcgan", "--data", str(inputs / "faces.npy"), "--dataset", "tiny", "--real-stats",
            str(inputs / "stats.npz"), "--out", str(run / "out"), "--checkpoint-dir", str(run / "checkpoints"),
            "--seed", str(seed), "--settings", json.dumps(settings), "--device", "cpu", "--threads", "1",
            "--log-every", "1", *extra]


def weights(run):
    return torch.load(run / "out" / "generator.pt", weights_only=True)


def assert_same_weights(first, second):
    assert first.keys() == second.keys()
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_a_tiny_run_writes_every_output_and_repeats_exactly(inputs, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        assert cli.main(argv(inputs, run)) == 0
    out = runs[0] / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 12 and summary["image_shape"] == [3, 16, 16]  # 3 epochs of 32 // 8 batches
    assert [entry["step"] for entry in summary["fid"]] == [12] and summary["fid"][0]["generated"] == 4
    grids = sorted(path.name for path in (out / "samples").iterdir())
    assert grids == ["step_0000005.png", "step_0000010.png", "step_0000012.png"]
    assert Image.open(out / "samples" / grids[0]).size == (8 * 18 + 2, 8 * 18 + 2)  # 8x8 grid of 16 px
    assert Image.open(out / "samples.gif").n_frames == 3
    assert (out / "turing.html").read_text().count("data-truth=") == 8
    assert (runs[0] / "checkpoints" / "final.pt").exists() and not (runs[0] / "checkpoints" / "grids").exists()
    assert (out / "summary.json").read_bytes() == (runs[1] / "out" / "summary.json").read_bytes()
    assert_same_weights(weights(runs[0]), weights(runs[1]))


def test_another_seed_trains_other_weights(inputs, tmp_path):
    assert cli.main(argv(inputs, tmp_path / "a")) == 0
    assert cli.main(argv(inputs, tmp_path / "b", seed=8)) == 0
    first, second = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert not torch.equal(first["project.weight"], second["project.weight"])


def test_sigterm_mid_run_then_resume_equals_an_uninterrupted_run(inputs, tmp_path, mlflow_uri):
    settings = {**SETTINGS, "epochs": 100, "sample_every": 50}  # 400 steps: the stop lands mid-run
    tracked = ["--tracking-uri", mlflow_uri, "--experiment", "tests"]
    command = [sys.executable, "-m", "mlnb.cli", *argv(inputs, tmp_path / "stopped", settings, *tracked)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ)
    for line in process.stderr:
        if "step 5/400" in line:
            process.send_signal(signal.SIGTERM)
            break
    process.stderr.read()
    assert process.wait(timeout=120) == 128 + signal.SIGTERM
    assert (tmp_path / "stopped" / "checkpoints" / "last.pt").exists()
    assert not (tmp_path / "stopped" / "out" / "generator.pt").exists()

    assert cli.main(argv(inputs, tmp_path / "stopped", settings, *tracked)) == 0
    assert cli.main(argv(inputs, tmp_path / "whole", settings)) == 0
    assert_same_weights(weights(tmp_path / "stopped"), weights(tmp_path / "whole"))

    client = mlflow.MlflowClient(mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run_id = runs[0].info.run_id
    assert [metric.step for metric in client.get_metric_history(run_id, "d_loss")] == list(range(1, 401))
    assert [metric.step for metric in client.get_metric_history(run_id, "fid")] == [400]
    pngs = [entry.path for entry in client.list_artifacts(run_id, "images") if entry.path.endswith(".png")]
    assert sorted(int(path.split("+")[2]) for path in pngs) == list(range(50, 401, 50))
    assert {"samples.gif", "turing.html", "summary.json"} <= {entry.path for entry in client.list_artifacts(run_id)}
    assert [model.name for model in client.search_logged_models([runs[0].info.experiment_id])] == ["generator"]


def test_two_processes_stopped_by_sigterm_log_one_run_that_one_process_resumes_to_the_end(inputs, tmp_path,
                                                                                         mlflow_uri):
    """torchrun, 2 CPU processes (gloo): rank 0 alone logs; the stop lands after the same step in both; the
    checkpoint (unwrapped G and D) resumes in one process; the run then has the metrics of a 1-process run."""
    settings = {**SETTINGS, "epochs": 100, "sample_every": 50}  # 400 steps of 8 (4 per process)
    tracked = ["--tracking-uri", mlflow_uri, "--experiment", "tests"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", *torchrun_options(2), "-m", "mlnb.cli"]
    process = subprocess.Popen([*torchrun, *argv(inputs, tmp_path / "stopped", settings, *tracked, "--threads", "2")],
                               stderr=subprocess.STDOUT, stdout=subprocess.PIPE, text=True, env=os.environ)
    for line in process.stdout:
        if "step 5/400" in line:
            process.send_signal(signal.SIGTERM)  # torchrun forwards it to both processes
            break
    output = process.stdout.read()
    assert process.wait(timeout=180) != 0
    assert output.count("stopped by SIGTERM after step") == 2, output[-3000:]
    stopped_at = load_checkpoint(tmp_path / "stopped" / "checkpoints" / "last.pt")["step"]
    assert f"stopped by SIGTERM after step {stopped_at} (checkpoint written)" in output and 5 <= stopped_at < 400
    assert not (tmp_path / "stopped" / "out" / "generator.pt").exists()
    client = mlflow.MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("tests").experiment_id
    (run,) = client.search_runs([experiment])
    assert run.info.status == "KILLED" and run.data.tags["mlnb.processes"] == "2"

    assert cli.main(argv(inputs, tmp_path / "stopped", settings, *tracked)) == 0
    assert cli.main(argv(inputs, tmp_path / "whole", settings, *tracked)) == 0
    resumed, whole = (client.get_run(found.info.run_id) for found in
                      sorted(client.search_runs([experiment]), key=lambda found: found.info.run_id != run.info.run_id))
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"

    def metric_steps(logged):  # the training's metrics (system metrics are samples in time, not steps)
        return {key: [m.step for m in client.get_metric_history(logged.info.run_id, key)]
                for key in logged.data.metrics if not key.startswith("system/")}
    assert metric_steps(resumed) == metric_steps(whole)  # the same metrics, each step once
    assert metric_steps(resumed)["d_loss"] == list(range(1, 401))
    grids = sorted(path.name for path in (tmp_path / "stopped" / "out" / "samples").iterdir())
    assert grids == [f"step_{step:07d}.png" for step in range(50, 401, 50)]  # before and after the stop
