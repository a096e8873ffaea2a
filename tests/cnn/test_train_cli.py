from __future__ import annotations

import json
import re

import mlflow
import numpy as np
import pytest
import torch

from mlnb import cli
from mlnb.cnn.network import BlogCNN
from tests.synthetic_mnist import write_mnist_npz

QUICK = ["--new-variant", "--steps", "30", "--batch-size", "20", "--log-every", "10", "--checkpoint-every", "10"]


def train_cnn(tmp_path, data, *extra, variant="quick", out="out"):
    argv = ["train-cnn", "--data", str(data), "--variant", variant, "--seed", "3", "--out", str(tmp_path / out),
            "--checkpoint-dir", str(tmp_path / "checkpoints" / out), "--device", "cpu", "--rule", "train_cnn_quick",
            *QUICK, *extra]
    return cli.main(argv)


def test_writes_the_result_and_loadable_weights_without_drawing_figures(tmp_path, mnist_npz, monkeypatch):
    def no_figures(*args, **kwargs):
        raise AssertionError("figures drawn for an untracked run")

    monkeypatch.setattr("mlnb.training.figures.confusion_figure", no_figures)
    assert train_cnn(tmp_path, mnist_npz, "--optimizer", "adam", "--timing", str(tmp_path / "timing.json")) == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["variant"] == "quick" and result["settings"]["steps"] == 30 and result["epochs"] == 3.0
    assert result["test_accuracy"] > 0.9  # the bars are easy to learn
    assert np.array(result["confusion"]).sum() == result["test_images"] == 50
    model = BlogCNN()
    model.load_state_dict(torch.load(tmp_path / "out" / "model.pt", weights_only=True))
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert timing["train_seconds"] > 0 and timing["images_per_second"] > 0
    assert "train_seconds" not in result  # wall times stay out of the reproducible outputs
    assert (tmp_path / "checkpoints" / "out" / "final.pt").exists()


def test_same_seed_gives_the_same_bytes(tmp_path, mnist_npz):
    options = ("--batch-norm", "true", "--dropout", "0.3", "--schedule", "one-cycle", "--optimizer", "adam")
    for out in ("first", "second"):
        assert train_cnn(tmp_path, mnist_npz, *options, out=out) == 0
    for name in ("result.json", "model.pt"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()


def test_the_config_file_supplies_the_variant(tmp_path, mnist_npz):
    config = tmp_path / "config.yaml"
    config.write_text("cnn:\n  variants:\n    tiny: {steps: 5, batch_size: 10, optimizer: adam}\n")
    argv = ["train-cnn", "--data", mnist_npz, "--variant", "tiny", "--settings", str(config),
            "--out", str(tmp_path / "out"), "--checkpoint-dir", str(tmp_path / "ckpt")]
    assert cli.main(argv) == 0
    assert json.loads((tmp_path / "out" / "result.json").read_text())["settings"]["batch_size"] == 10


def test_an_unknown_variant_is_named(tmp_path, mnist_npz, caplog):
    config = tmp_path / "config.yaml"
    config.write_text("cnn:\n  variants:\n    tiny: {steps: 5}\n")
    argv = ["train-cnn", "--data", mnist_npz, "--variant", "huge", "--settings", str(config), "--out", str(tmp_path)]
    assert cli.main(argv) == 2
    assert "cnn.variants: no variant 'huge' (configured: tiny)" in caplog.text


@pytest.mark.parametrize(("overrides", "message"), [
    ({"x_train": np.zeros((10, 32, 32), np.uint8)}, r"x_train: expected N x 28 x 28 digits \(N >= 1\), got shape"),
    ({"x_train": np.zeros((0, 28, 28), np.uint8), "y_train": np.zeros(0, np.uint8)}, "x_train: expected N x 28"),
    ({"y_test": np.full(50, 12, np.uint8)}, "test: label 12 outside 0..9"),
    ({"x_test": np.zeros((50, 28, 28), np.float32)}, "x_test: expected uint8 images, got float32"),
    ({"y_train": None}, "no array 'y_train'"),
])
def test_bad_data_is_named(tmp_path, overrides, message, caplog):
    data = write_mnist_npz(tmp_path / "bad.npz", **overrides)
    assert train_cnn(tmp_path, data) == 2
    assert "bad.npz" in caplog.text and re.search(message, caplog.text)


def test_a_batch_larger_than_the_data_is_named(tmp_path, mnist_npz, caplog):
    assert train_cnn(tmp_path, mnist_npz, "--batch-size", "500") == 2
    assert "batch size 500 must be between 1 and the dataset's 200 items" in caplog.text


def test_a_tracked_run_logs_metrics_with_steps_figures_and_the_model(tmp_path, mnist_npz, mlflow_uri):
    uri = mlflow_uri
    assert train_cnn(tmp_path, mnist_npz, "--eval-every", "10", "--tracking-uri", uri, "--experiment", "tests") == 0
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.run_name == "cnn-quick" and run.info.status == "FINISHED"
    assert run.data.tags["mlnb.rule"] == "train_cnn_quick" and run.data.params["optimizer"] == "sgd"
    assert "input_md5.mnist" in run.data.params
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [10, 20, 30]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [10, 20, 30]
    artifacts = {a.path for folder in ("", "model", "figures") for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"model/model.pt", "result.json", "figures/confusion_matrix.png"} <= artifacts


@pytest.mark.gpu
def test_trains_on_cuda_in_bf16_with_channels_last(tmp_path, mnist_npz):
    assert train_cnn(tmp_path, mnist_npz, "--device", "cuda", "--optimizer", "adam", "--batch-norm", "true",
                     "--timing", str(tmp_path / "timing.json")) == 0
    assert json.loads((tmp_path / "out" / "result.json").read_text())["device"] == "cuda"
    assert "bf16 on, channels_last on" in json.loads((tmp_path / "timing.json").read_text())["device"]
