from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor

import mlflow
import numpy as np
import pytest

from mlnb import tracking
from mlnb.errors import ConfigError


def make_args(uri, **extra):
    parser = argparse.ArgumentParser()
    tracking.add_tracking_arguments(parser)
    parser.add_argument("--size", type=int, default=64)
    argv = ["--tracking-uri", uri, "--experiment", "tests", "--config-hash", "abc123"]
    for key, value in extra.items():
        argv += [f"--{key}", str(value)]
    return parser.parse_args(argv)


@pytest.fixture()
def uri(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking.ensure_experiment(uri, "tests")
    return uri


def test_ensure_experiment_is_idempotent_and_keeps_artifacts_beside_store(uri, tmp_path):
    first = tracking.ensure_experiment(uri, "tests")
    assert tracking.ensure_experiment(uri, "tests") == first
    experiment = mlflow.MlflowClient(uri).get_experiment(first)
    assert experiment.artifact_location == (tmp_path / "artifacts").resolve().as_uri()


def test_tracked_run_records_params_provenance_and_metrics(uri, tmp_path):
    data = tmp_path / "input.bin"
    data.write_bytes(b"hello")
    args = make_args(uri, size=32)
    with tracking.tracked_run(args, "unit", inputs={"data": data}) as tracker:
        tracker.log_metrics({"loss": 0.5}, step=3)
        tracker.log_image(np.zeros((4, 4, 3), np.uint8), "previews/zero.png")
        run_id = tracker.run_id
    run = mlflow.MlflowClient(uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["size"] == "32"
    assert run.data.params["input_md5.data"] == "5d41402abc4b2a76b9719d911017c592"
    assert "tracking_uri" not in run.data.params
    assert run.data.tags["config_hash"] == "abc123"
    assert run.data.tags["git_commit"]
    assert run.data.tags["version.mlflow"] == mlflow.__version__
    assert run.data.metrics["loss"] == 0.5
    history = mlflow.MlflowClient(uri).get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [3]
    artifacts = [a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id, "previews")]
    assert artifacts == ["previews/zero.png"]


def test_failed_body_marks_run_failed(uri):
    args = make_args(uri)
    with pytest.raises(RuntimeError), tracking.tracked_run(args, "unit") as tracker:
        run_id = tracker.run_id
        raise RuntimeError("boom")
    assert mlflow.MlflowClient(uri).get_run(run_id).info.status == "FAILED"


def test_no_uri_logs_nothing():
    parser = argparse.ArgumentParser()
    tracking.add_tracking_arguments(parser)
    with tracking.tracked_run(parser.parse_args([]), "unit") as tracker:
        assert not tracker.active
        tracker.log_metrics({"x": 1.0})  # ignored, no error


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
