from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import mlflow
import numpy as np
import pytest

from mlnb import tracking
from mlnb.errors import ConfigError
from mlnb.stopping import SignalExit, Stopped
from tests.mlflow_server import refusing_server


def make_args(uri, *extra, experiment="tests"):
    parser = argparse.ArgumentParser()
    tracking.add_tracking_arguments(parser)
    parser.add_argument("--size", type=int, default=64)
    return parser.parse_args(["--tracking-uri", uri, "--experiment", experiment, *extra])


@pytest.fixture()
def uri(mlflow_uri):
    return mlflow_uri


def test_create_experiment_is_idempotent_and_keeps_artifacts_beside_store(uri, tmp_path):
    first = tracking.create_experiment(uri, "tests")
    assert tracking.create_experiment(uri, "tests") == first == tracking.experiment_id(uri, "tests")
    experiment = mlflow.MlflowClient(uri).get_experiment(first)
    assert experiment.artifact_location == (tmp_path / "artifacts").resolve().as_uri()
    assert experiment.tags[tracking.ARTIFACTS_TAG] == "artifacts"


def test_tracked_run_records_params_provenance_and_metrics(uri, tmp_path):
    data = tmp_path / "input.bin"
    data.write_bytes(b"hello")
    args = make_args(uri, "--size", "32")
    with tracking.tracked_run(args, "unit", inputs={"data": data}) as tracker:
        tracker.log_metrics({"loss": 0.5}, step=3)
        tracker.log_image(np.zeros((4, 4, 3), np.uint8), "previews/zero.png")
        run_id = tracker.run_id
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["size"] == "32"
    assert run.data.params["input_md5.data"] == "5d41402abc4b2a76b9719d911017c592"
    assert "tracking_uri" not in run.data.params
    assert run.data.tags["config_hash"] == tracking.config_hash({"size": 32})
    assert run.data.tags["git_commit"]
    assert run.data.tags["version.mlflow"] == mlflow.__version__
    assert run.data.metrics["loss"] == 0.5
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [3]
    artifacts = [a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id, "previews")]
    assert artifacts == ["previews/zero.png"]


def test_config_hash_covers_the_stage_config_alone(uri):
    section = {"augment": {"copies": 4}}
    runs = []
    for size in (32, 64):  # a flag that is not part of the stage config
        args = make_args(uri, "--size", str(size), "--stage-config", json.dumps(section))
        with tracking.tracked_run(args, "unit") as tracker:
            runs.append(tracker.run_id)
    hashes = {mlflow.MlflowClient(uri).get_run(run).data.tags["config_hash"] for run in runs}
    assert hashes == {tracking.config_hash(section)}
    assert tracking.config_hash({"augment": {"copies": 5}}) != tracking.config_hash(section)


def test_failed_body_marks_run_failed(uri):
    with pytest.raises(RuntimeError), tracking.tracked_run(make_args(uri), "unit") as tracker:
        run_id = tracker.run_id
        raise RuntimeError("boom")
    assert mlflow.MlflowClient(uri).get_run(run_id).info.status == "FAILED"


@pytest.mark.parametrize(("error", "signal_name"), [
    (Stopped("SIGUSR1"), "SIGUSR1"), (SignalExit("SIGTERM"), "SIGTERM"), (KeyboardInterrupt(), "SIGINT")])
def test_a_signal_ends_the_run_killed_with_buffered_metrics_written(uri, error, signal_name):
    with pytest.raises(type(error)), tracking.tracked_run(make_args(uri), "unit") as tracker:
        tracker.log_metrics({"loss": 1.0}, step=0)
        run_id = tracker.run_id
        raise error
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert (run.info.status, run.data.tags["mlnb.stopped"]) == ("KILLED", signal_name)
    assert run.data.metrics == {"loss": 1.0}


def test_exit_with_status_zero_finishes_the_run(uri):
    with pytest.raises(SystemExit), tracking.tracked_run(make_args(uri), "unit") as tracker:
        run_id = tracker.run_id
        sys.exit(0)
    assert mlflow.MlflowClient(uri).get_run(run_id).info.status == "FINISHED"


def test_no_uri_logs_nothing():
    parser = argparse.ArgumentParser()
    tracking.add_tracking_arguments(parser)
    with tracking.tracked_run(parser.parse_args([]), "unit") as tracker:
        assert not tracker.active
        tracker.log_metrics({"x": 1.0})  # ignored, no error
        tracker.flush()


def _log_from_process(uri: str, worker: int) -> str:
    with tracking.tracked_run(make_args(uri), f"worker-{worker}") as tracker:
        for step in range(5):
            tracker.log_metrics({"value": worker + step}, step=step)
        return tracker.run_id


def test_parallel_jobs_share_one_store(uri):
    with ProcessPoolExecutor(4) as pool:
        run_ids = list(pool.map(_log_from_process, [uri] * 4, range(4)))
    client = mlflow.MlflowClient(uri)
    assert len(set(run_ids)) == 4
    for worker, run_id in enumerate(run_ids):
        assert [m.value for m in client.get_metric_history(run_id, "value")] == [worker + s for s in range(5)]


def _error_from_process(uri: str, worker: int) -> str:
    try:
        _log_from_process(uri, worker)
    except ConfigError as error:
        return str(error)
    return "no error"


def test_jobs_on_a_fresh_store_fail_clearly_and_create_nothing(tmp_path):
    db = tmp_path / "mlflow.db"
    with ProcessPoolExecutor(4) as pool:  # these raced to migrate the store: "duplicate column name: step"
        errors = set(pool.map(_error_from_process, [f"sqlite:///{db}"] * 4, range(4)))
    assert errors == {f"MLflow store {db} does not exist: create it first with `mlnb init-tracking "
                      f"--tracking-uri sqlite:///{db} --experiment tests` (Snakemake's init_tracking rule)"}
    assert not db.exists()


def test_a_missing_experiment_is_a_clear_error(uri):
    with pytest.raises(ConfigError, match=f"MLflow experiment 'other' not found at {uri}: .*mlnb init-tracking"):
        with tracking.tracked_run(make_args(uri, experiment="other"), "unit"):
            pass
    assert mlflow.MlflowClient(uri).get_experiment_by_name("other") is None


def test_a_run_resumes_by_id(uri):
    client = mlflow.MlflowClient(uri)
    with pytest.raises(Stopped), tracking.tracked_run(make_args(uri), "train") as tracker:
        for step in range(3):
            tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
        run_id = tracker.run_id
        raise Stopped("SIGTERM")  # a checkpoint would hold run_id
    with tracking.tracked_run(make_args(uri), "train", run_id=run_id) as tracker:
        assert tracker.run_id == run_id
        for step in range(3, 5):
            tracker.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["size"] == "64"
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0, 1, 2, 3, 4]
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_resuming_with_other_settings_or_an_unknown_run_is_refused(uri):
    with tracking.tracked_run(make_args(uri), "train") as tracker:
        run_id = tracker.run_id
    with pytest.raises(ConfigError, match=f"cannot resume MLflow run {run_id}: param size was '64', now '32'"):
        with tracking.tracked_run(make_args(uri, "--size", "32"), "train", run_id=run_id):
            pass
    with pytest.raises(ConfigError, match=f"cannot resume MLflow run 0123abcd: not found at {uri}"):
        with tracking.tracked_run(make_args(uri), "train", run_id="0123abcd"):
            pass


def test_metrics_are_written_in_batches(uri, monkeypatch):
    batches = []
    log_batch = mlflow.MlflowClient.log_batch

    def counting_log_batch(self, run_id, metrics=(), **kwargs):
        if metrics:
            batches.append(len(metrics))
        return log_batch(self, run_id, metrics=metrics, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "log_batch", counting_log_batch)
    with tracking.tracked_run(make_args(uri), "train") as tracker:
        tracker.flush_seconds = float("inf")
        for step in range(1250):
            tracker.log_metrics({"loss": step, "accuracy": -step}, step=step)
        assert batches == [1000, 1000]  # full batches as they fill; the rest waits
        run_id = tracker.run_id
    assert batches == [1000, 1000, 500]  # flushed at the end of the run
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, "accuracy")
    assert [m.value for m in history] == [-step for step in range(1250)]


def test_metrics_are_flushed_periodically_and_on_request(uri):
    client = mlflow.MlflowClient(uri)
    with tracking.tracked_run(make_args(uri), "train") as tracker:
        tracker.log_metrics({"loss": 3.0}, step=0)
        assert client.get_metric_history(tracker.run_id, "loss") == []  # buffered
        tracker.flush()
        assert [m.value for m in client.get_metric_history(tracker.run_id, "loss")] == [3.0]
        tracker.flush_seconds = 0.0  # every call is past the period
        tracker.log_metrics({"loss": 2.0}, step=1)
        assert [m.value for m in client.get_metric_history(tracker.run_id, "loss")] == [3.0, 2.0]


def test_a_stage_run_nests_under_the_parent_run_from_the_environment(uri, monkeypatch):
    client = mlflow.MlflowClient(uri)
    parent = client.create_run(tracking.experiment_id(uri, "tests"), run_name="workflow").info.run_id
    monkeypatch.setenv(tracking.PARENT_RUN_ENV, parent)
    with tracking.tracked_run(make_args(uri), "unit") as tracker:
        child = tracker.run_id
    assert client.get_run(child).data.tags["mlflow.parentRunId"] == parent
    monkeypatch.setenv(tracking.PARENT_RUN_ENV, "feedbeef")
    with pytest.raises(ConfigError, match="MLNB_PARENT_RUN_ID=feedbeef: parent run feedbeef: not found"):
        with tracking.tracked_run(make_args(uri), "unit"):
            pass


PROVENANCE_SCRIPT = """
import argparse, json, sys
from mlnb import tracking
parser = argparse.ArgumentParser()
tracking.add_tracking_arguments(parser)
with tracking.tracked_run(parser.parse_args(sys.argv[1:]), "unit") as tracker:
    run_id = tracker.run_id
print(json.dumps({"torch_imported": "torch" in sys.modules, "run_id": run_id}))
"""


def test_provenance_names_the_job_without_importing_torch(uri, tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "1,3", "SLURM_JOB_ID": "4242"}
    result = subprocess.run([sys.executable, "-c", PROVENANCE_SCRIPT, "--tracking-uri", uri,
                             "--experiment", "tests"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout)
    assert not printed["torch_imported"]
    tags = mlflow.MlflowClient(uri).get_run(printed["run_id"]).data.tags
    assert (tags["env.CUDA_VISIBLE_DEVICES"], tags["env.SLURM_JOB_ID"]) == ("1,3", "4242")
    assert tags["device"].startswith("cpu:") and "cuda.version" not in tags


def test_provenance_names_cuda_when_the_job_uses_torch(uri):
    torch = pytest.importorskip("torch")
    with tracking.tracked_run(make_args(uri), "unit") as tracker:
        run_id = tracker.run_id
    tags = mlflow.MlflowClient(uri).get_run(run_id).data.tags
    assert tags["cuda.version"] == (torch.version.cuda or "none")
    if torch.cuda.is_initialized():
        assert tags["gpu.name"] == torch.cuda.get_device_name()
    else:
        assert tags["device"].startswith("cpu:") and "gpu.name" not in tags


def test_artifacts_follow_the_store_when_the_project_moves(tmp_path, mlflow_template_db):
    old, new = tmp_path / "old" / "mlflow", tmp_path / "new" / "mlflow"
    data = tmp_path / "note.txt"
    data.write_text("hello")
    old.mkdir(parents=True)
    shutil.copyfile(mlflow_template_db, old / "mlflow.db")  # a store made in another folder, as in a copy
    with tracking.tracked_run(make_args(f"sqlite:///{old / 'mlflow.db'}"), "before") as tracker:
        tracker.log_artifact(data)
        before = tracker.run_id
    shutil.move(tmp_path / "old", tmp_path / "new")

    uri = f"sqlite:///{new / 'mlflow.db'}"
    with tracking.tracked_run(make_args(uri), "after") as tracker:
        tracker.log_artifact(data)
        after = tracker.run_id
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("tests")
    assert experiment.artifact_location == (new / "artifacts").resolve().as_uri()
    assert (new / "artifacts" / after / "artifacts" / "note.txt").read_text() == "hello"
    assert not (tmp_path / "old").exists()  # nothing written into the old tree
    for run in (before, after):  # the moved run's artifacts are found in the new tree too
        assert [a.path for a in client.list_artifacts(run)] == ["note.txt"]
        assert client.get_run(run).info.artifact_uri.startswith(experiment.artifact_location + "/")


def test_an_experiment_with_its_own_artifact_location_is_left_alone(uri, tmp_path):
    elsewhere = (tmp_path / "elsewhere").as_uri()
    mlflow.MlflowClient(uri).create_experiment("custom", artifact_location=elsewhere)
    tracking.experiment_id(uri, "custom")
    assert mlflow.MlflowClient(uri).get_experiment_by_name("custom").artifact_location == elsewhere


def test_retry_locked_waits_out_a_locked_store_only():
    calls = []

    def locked_twice():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "done"

    assert tracking.retry_locked(locked_twice) == "done" and len(calls) == 3
    with pytest.raises(ValueError):
        tracking.retry_locked(lambda: (calls.append(1), int("x")))
    assert len(calls) == 4  # no retry on any other error


def test_retry_locked_gives_up_once_the_store_stayed_locked_for_the_wait(monkeypatch):
    monkeypatch.setattr(tracking, "LOCKED_WAIT_SECONDS", 0.5)
    tries = []

    def locked():
        tries.append(time.monotonic())
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(tracking.StoreLockedTooLong) as raised:
        tracking.retry_locked(locked)
    assert len(tries) > 2 and 0.5 <= raised.value.seconds < 1.5
    assert str(raised.value.__cause__) == "database is locked"
    gave_up = []

    def inner_retry_gave_up():
        gave_up.append(1)
        raise tracking.StoreLockedTooLong(0.5)

    with pytest.raises(tracking.StoreLockedTooLong):  # an outer retry_locked does not wait all over again
        tracking.retry_locked(inner_retry_gave_up)
    assert len(gave_up) == 1


def _sqlite_error(db, statement: str) -> sqlite3.Error:
    """The error SQLite raises for ``statement`` on the file ``db`` (opened read-only when it exists)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as connection:
            connection.execute(statement)
    except sqlite3.Error as error:
        return error
    raise AssertionError(f"{statement} worked on {db}")


def test_store_faults_are_one_line_naming_the_store_file(tmp_path, mlflow_template_db):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100)
    wrapped = RuntimeError("an MLflow error, raised from SQLite's")
    wrapped.__cause__ = _sqlite_error(mlflow_template_db, "delete from runs")
    cases = {_sqlite_error(text, "select 1 from sqlite_master"):
             "not an SQLite database (restore it from a backup, or use a store that `mlnb init-tracking` made)",
             wrapped: "read-only (make the file and its folder writable)",
             tracking.StoreLockedTooLong(61.25): "locked by another process for 61.2 s (mlnb waits up to 60 s)",
             sqlite3.OperationalError("database or disk is full"):
             "its disk is full (no space left to write the store)"}
    for error, problem in cases.items():
        with pytest.raises(tracking.TrackingStoreError) as raised, tracking.store_faults(uri):
            raise error
        assert str(raised.value) == f"MLflow store {tmp_path / 'mlflow.db'}: {problem}"
    for other_uri, error in ((uri, ValueError("database is locked")), (uri, ConfigError("a config error")),
                             ("http://127.0.0.1:5000", sqlite3.OperationalError("database is locked"))):
        with pytest.raises(type(error)) as raised, tracking.store_faults(other_uri):  # not a store fault: as it was
            raise error
        assert raised.value is error


def test_flatten_params_nests_and_serialises():
    assert tracking.flatten_params({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {
        "a.b": "1", "a.c": "[1, 2]", "d": "None"}


def test_stage_config_and_named_inputs_are_logged(uri, tmp_path):
    data = tmp_path / "zip.bin"
    data.write_bytes(b"hello")
    parser = argparse.ArgumentParser()
    tracking.add_tracking_arguments(parser)
    args = parser.parse_args(["--tracking-uri", uri, "--experiment", "tests",
                              "--stage-config", '{"faces": {"size": 64, "landmarks": "outer-eyes-nose"}}',
                              "--input-file", f"celeba_zip={data}"])
    with tracking.tracked_run(args, "unit", params={"shards": 2}) as tracker:
        run_id = tracker.run_id
    params = mlflow.MlflowClient(uri).get_run(run_id).data.params
    assert params["config.faces.size"] == "64"
    assert params["config.faces.landmarks"] == "outer-eyes-nose"
    assert params["input_md5.celeba_zip"] == "5d41402abc4b2a76b9719d911017c592"
    assert params["shards"] == "2"


def test_malformed_input_file_is_a_clear_error(uri):
    parser = argparse.ArgumentParser()
    tracking.add_tracking_arguments(parser)
    args = parser.parse_args(["--tracking-uri", uri, "--input-file", "no-equals-sign"])
    with pytest.raises(ConfigError, match="--input-file 'no-equals-sign': expected NAME=PATH"):
        with tracking.tracked_run(args, "unit"):
            pass


def test_step_images_are_logged_under_their_key_with_the_step(uri):
    with tracking.tracked_run(make_args(uri), "unit") as tracker:
        for step in (10, 20):
            tracker.log_step_image(np.full((4, 4, 3), step, np.uint8), "samples", step)
        run_id = tracker.run_id
    names = [entry.path for entry in mlflow.MlflowClient(uri).list_artifacts(run_id, "images")]
    pngs = [name.removeprefix("images/").split("+") for name in names if name.endswith(".png")]
    assert sorted((parts[0], parts[1], int(parts[2])) for parts in pngs) == [("samples", "step", 10),
                                                                             ("samples", "step", 20)]


@pytest.mark.parametrize("timeout", [0.5, 1, 2, 3, 7.5, 60])
def test_mlflows_attempts_at_one_request_fit_in_the_timeout_and_the_environment_is_restored(timeout, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    before = dict(os.environ)
    with tracking.request_bounds(timeout):
        attempts = int(os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) + 1
        assert attempts * int(os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]) <= max(timeout, 1)
        assert {os.environ[f"MLFLOW_HTTP_REQUEST_BACKOFF_{name}"] for name in ("FACTOR", "JITTER")} == {"0"}
    assert dict(os.environ) == before


def test_a_tracker_whose_server_is_gone_says_so_once_and_then_waits_no_more():
    with refusing_server() as url, tracking.request_bounds(2):
        tracker = tracking.Tracker("0123456789abcdef", mlflow.MlflowClient(url), timeout=2)
        with pytest.raises(tracking.TrackingServerError, match=f"^MLflow tracking server {url}: Connection refused"):
            tracker.log_params({"size": 32})
        tracker.log_metrics({"loss": 1.0}, step=1)
        tracker.flush()
        tracker.log_artifact(__file__)
        tracker.terminate("FAILED")
        assert tracker.store_lost


def test_tags_are_strings_before_they_reach_mlflow():
    assert tracking.tag_values({"mlnb.processes": 2, "ok": True, "none": None}) == {
        "mlnb.processes": "2", "ok": "True", "none": "None"}


def test_a_logged_pytorch_model_is_filed_under_its_run_and_loads_back(uri, tmp_path, monkeypatch):
    import mlflow.pytorch
    import torch

    monkeypatch.chdir(tmp_path)  # where MLflow would put a model of its default experiment (./mlruns)
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    example = np.ones((2, 3), np.float32)
    with tracking.tracked_run(make_args(uri), "unit") as tracker:
        tracker.log_pytorch_model(layer, "linear", input_example=example)
        assert mlflow.MlflowClient(uri).get_run(tracker.run_id).info.status == "RUNNING"
        run_id = tracker.run_id
    run = mlflow.MlflowClient(uri).get_run(run_id)
    [output] = run.outputs.model_outputs
    model = mlflow.MlflowClient(uri).get_logged_model(output.model_id)
    assert (model.experiment_id, model.source_run_id, run.info.status) == (run.info.experiment_id, run_id, "FINISHED")
    assert not (tmp_path / "mlruns").exists() and mlflow.active_run() is None
    mlflow.set_tracking_uri(uri)
    loaded = mlflow.pytorch.load_model(f"models:/{model.model_id}")
    with torch.no_grad():
        assert torch.equal(loaded(torch.from_numpy(example)), layer(torch.from_numpy(example)))


@pytest.mark.parametrize(("interval", "work"), [(60.0, 0.0), (0.5, 1.2)])
def test_system_metrics_cover_the_whole_run_even_one_shorter_than_the_interval(uri, interval, work):
    # a sample each interval, then the last one at the end; a run shorter than the interval has that one alone
    options = dataclasses.replace(tracking.TrackingOptions.from_args(make_args(uri)), system_metrics_interval=interval)
    with tracking.tracked_run(options, "short", params={}) as tracker:
        time.sleep(work)
        ended = time.time()
    history = mlflow.MlflowClient(uri).get_metric_history(tracker.run_id, "system/cpu_utilization_percentage")
    steps = [point.step for point in history]
    assert steps == list(range(len(steps))) and (len(steps) == 1) == (work < interval)
    assert max(point.timestamp for point in history) >= ended * 1000 - 1
