"""Many jobs logging at once: nothing lost, nobody fails on a locked store.

Issue 12 item 5. The embedded SQLite store takes one writer at a time; every
write in mlnb.tracking goes through retry_locked, and metrics are buffered into
batches. Here 16 separate processes log through one store, and a tracking
server (the cluster setup) takes a real stage command's run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from tests.mlflow_server import mlflow_server

WRITERS = 16
STEPS = 200
FLUSH_EVERY = 20  # ten batch writes per writer, so the writers' transactions interleave

WRITER = """
import argparse, sys, time
from pathlib import Path
from mlnb import tracking

uri, worker, steps, flush_every, artifact, gate = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]),
                                                  sys.argv[5], Path(sys.argv[6]))
args = argparse.Namespace(tracking_uri=uri, experiment="tests", run_name=None, stage_config=None, input_file=[])
with tracking.tracked_run(args, f"writer-{worker}", params={"worker": worker}) as tracker:
    (gate / str(worker)).touch()  # run open; wait for the others so that all of them write at once
    while not (gate / "go").exists():
        time.sleep(0.01)
    for step in range(steps):
        tracker.log_metrics({"loss": worker * 1000 + step, "accuracy": step / steps}, step=step)
        if (step + 1) % flush_every == 0:
            tracker.flush()
    Path(artifact).write_text(f"writer {worker}\\n")
    tracker.log_artifact(artifact)
"""


@pytest.mark.slow
def test_sixteen_writers_lose_no_run_metric_or_artifact(mlflow_uri, tmp_path):
    started = time.monotonic()
    gate = tmp_path / "gate"
    gate.mkdir()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, mlflow_uri, str(worker), str(STEPS),
                                 str(FLUSH_EVERY), str(tmp_path / f"writer-{worker}.txt"), str(gate)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for worker in range(WRITERS)]
    _open_gate_when_all_ready(gate, writers)
    outputs = [writer.communicate(timeout=600)[0] for writer in writers]
    print(f"{WRITERS} writers x {STEPS} steps x 2 metrics: {time.monotonic() - started:.1f} s")
    for worker, (writer, output) in enumerate(zip(writers, outputs, strict=True)):
        assert writer.returncode == 0, f"writer {worker} exited {writer.returncode}:\n{output}"
        assert "locked" not in output.lower()

    client = mlflow.MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("tests").experiment_id
    runs = {run.info.run_name: run for run in client.search_runs(experiment, max_results=1000)}
    assert set(runs) == {f"writer-{worker}" for worker in range(WRITERS)}
    for worker in range(WRITERS):
        run = runs[f"writer-{worker}"]
        run_id = run.info.run_id
        assert run.info.status == "FINISHED" and run.data.params["worker"] == str(worker)
        loss = client.get_metric_history(run_id, "loss")
        accuracy = client.get_metric_history(run_id, "accuracy")
        assert sorted((m.step, m.value) for m in loss) == [(s, worker * 1000 + s) for s in range(STEPS)]
        assert sorted(m.step for m in accuracy) == list(range(STEPS))
        assert [a.path for a in client.list_artifacts(run_id)] == [f"writer-{worker}.txt"]
        local = client.download_artifacts(run_id, f"writer-{worker}.txt", str(tmp_path / f"download-{worker}"))
        assert Path(local).read_text() == f"writer {worker}\n"


def _open_gate_when_all_ready(gate: Path, writers: list[subprocess.Popen], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(list(gate.iterdir())) < len(writers) and time.monotonic() < deadline:
        if any(writer.poll() is not None for writer in writers):
            break  # one died before its run was open: let the assertions show its output
        time.sleep(0.05)
    (gate / "go").touch()


@pytest.fixture()
def tracking_server(tmp_path):
    """``mlflow server`` on 127.0.0.1 with a SQLite backend, as the README starts it for a cluster."""
    with mlflow_server(tmp_path) as url:
        yield url


def _mlnb(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "mlnb.cli", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"mlnb {args[0]} exited {done.returncode}:\n{done.stdout}{done.stderr}"


@pytest.mark.slow
def test_a_stage_logs_through_a_tracking_server(tracking_server, tmp_path):
    _mlnb("init-tracking", "--tracking-uri", tracking_server, "--experiment", "cluster",
          "--out", str(tmp_path / "experiment.json"))
    out = tmp_path / "gates"
    _mlnb("train-gates", "--gate", "XOR", "--seed", "7", "--out", str(out), "--seeds", "1",
          "--max-iterations", "500", "--tracking-uri", tracking_server, "--experiment", "cluster")

    client = mlflow.MlflowClient(tracking_server)
    experiment = client.get_experiment_by_name("cluster").experiment_id
    (run,) = client.search_runs(experiment)
    assert run.info.run_name == "gates-xor" and run.info.status == "FINISHED"
    assert [point.step for point in client.get_metric_history(run.info.run_id, "error/seed_0")][:2] == [0, 100]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"XOR.json", "XOR_curves.png"}
    assert (tmp_path / "server-artifacts").is_dir()  # artifacts went through the server, not a local path
