"""The from-scratch network on MNIST-shaped data: learning, numpy and torch alike, outputs, bad inputs."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal

import mlflow
import numpy as np
import pytest
import torch

import mlnb.settings
from mlnb import cli
from mlnb.data.mnist import MnistArrays
from mlnb.errors import ConfigError, DataError
from mlnb.rng import generator
from mlnb.scratch.mlp import MlpTraining, load_mnist, train_mlp
from mlnb.scratch.network import Network
from mlnb.scratch.settings import MlpSettings
from mlnb.stopping import Stopped, cooperative_stop
from mlnb.tracking import Tracker
from mlnb.training.checkpoint import Checkpointer
from mlnb.training.options import RunOptions
from mlnb.training.settings import TrainSettings

SEED = 7


def synthetic_mnist(train: int = 300, test: int = 100, side: int = 28, classes: int = 10) -> dict[str, np.ndarray]:
    """Digits as a bright 6x6 patch whose place depends on the class, over uint8 noise."""
    rng = generator(0, "synthetic-mnist")
    arrays = {}
    for split, count in (("train", train), ("test", test)):
        labels = rng.integers(0, classes, size=count).astype(np.uint8)
        images = rng.integers(0, 60, size=(count, side, side)).astype(np.uint8)
        for image, label in zip(images, labels, strict=True):
            row, col = divmod(int(label), 5)
            image[2 + 12 * row:8 + 12 * row, 1 + 5 * col:7 + 5 * col] = 255
        arrays[f"x_{split}"], arrays[f"y_{split}"] = images, labels
    return arrays


@pytest.fixture()
def mnist_file(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, **synthetic_mnist())
    return path


def settings(**overrides) -> MlpSettings:
    return MlpSettings.from_mapping({"layers": [784, 16, 10], "epochs": 3, **overrides})


def train(settings: MlpSettings, data, seed: int, checkpoints, device: str = "auto", checkpoint_every: int = 1000,
          stop=None):
    """(network, epoch records, test predictions, training seconds) of a run checkpointed to ``checkpoints``
    (resumed from there when it holds a checkpoint), untracked."""
    training = MlpTraining(settings, data, seed, device)
    checkpointer = Checkpointer(checkpoints, fingerprint=training.fingerprint("test data"), models={"mlp": training})
    result = training.run(checkpointer, checkpointer.restore(), Tracker(), checkpoint_every, stop)
    return training.net, training.records, training.predict_test(), result.train_seconds


def test_defaults_are_784_100_10_with_mini_batches():
    defaults = MlpSettings.from_mapping({})
    assert defaults.layers == (784, 100, 10) and defaults.batch_size == 10 and defaults.backend == "numpy"


def test_the_network_learns_the_synthetic_digits(mnist_file, tmp_path):
    data = load_mnist(mnist_file, 784)
    net, records, predictions, seconds = train(settings(epochs=5), data, SEED, tmp_path / "checkpoints")
    assert [record["epoch"] for record in records] == [1, 2, 3, 4, 5]
    assert [record["step"] for record in records] == [30, 60, 90, 120, 150]  # 300 images, batches of 10
    assert records[-1]["train_error"] < records[0]["train_error"]
    assert [record["test_accuracy"] for record in records] == [0.37, 0.84, 0.89, 0.89, 1.0]
    assert np.mean(predictions == data.y_test) == records[-1]["test_accuracy"]
    assert seconds > 0


def test_numpy_and_torch_backends_train_the_same_network(mnist_file, tmp_path):
    data = load_mnist(mnist_file, 784)
    runs = [train(settings(backend=backend, dtype="float64", epochs=2), data, SEED, tmp_path / backend, "cpu")
            for backend in ("numpy", "torch")]
    (numpy_net, numpy_records, numpy_predictions, _), (torch_net, torch_records, torch_predictions, _) = runs
    for ours, theirs in zip(numpy_records, torch_records, strict=True):
        assert theirs["train_error"] == pytest.approx(ours["train_error"], rel=1e-10)
        assert theirs["test_accuracy"] == ours["test_accuracy"]
    np.testing.assert_array_equal(numpy_predictions, torch_predictions)
    np.testing.assert_allclose(torch_net.weights[0].numpy(), numpy_net.weights[0], rtol=1e-9, atol=1e-12)


@pytest.mark.gpu
def test_torch_on_cuda_matches_numpy(mnist_file, tmp_path):
    data = load_mnist(mnist_file, 784)
    _, cpu_records, _, _ = train(settings(dtype="float64"), data, SEED, tmp_path / "cpu")
    net, cuda_records, _, _ = train(settings(backend="torch", dtype="float64"), data, SEED, tmp_path / "cuda", "cuda")
    assert net.weights[0].device.type == "cuda"
    assert cuda_records[-1]["train_error"] == pytest.approx(cpu_records[-1]["train_error"], rel=1e-6)


@pytest.fixture()
def uri(mlflow_uri):
    return mlflow_uri


def test_train_mlp_writes_a_reproducible_result_and_a_model_that_loads_back(tmp_path, mnist_file, uri):
    results = []
    for name in ("first", "again"):
        out = tmp_path / name
        args = ["train-mlp", "--data", str(mnist_file), "--seed", str(SEED), "--out", str(out),
                "--timing", str(tmp_path / f"{name}_timing.json"), "--checkpoint-dir", str(tmp_path / f"{name}_ckpt"),
                "--settings", json.dumps({"layers": [784, 16, 10], "epochs": 2})]
        if name == "first":
            args += ["--tracking-uri", uri, "--experiment", "tests"]
        assert cli.main(args) == 0
        assert {path.name for path in out.iterdir()} == {"result.json", "model.npz", "confusion.png",
                                                          "misclassified.png"}
        results.append((out / "result.json").read_bytes())
    assert results[0] == results[1]  # timings go to --timing, so a seed fixes result.json byte for byte
    timing = json.loads((tmp_path / "first_timing.json").read_text())
    assert [epoch["epoch"] for epoch in timing["epochs"]] == [1, 2] and timing["train_images_per_second"] > 0
    result = json.loads(results[0])
    assert result["settings"]["layers"] == [784, 16, 10] and result["test_images"] == 100
    assert np.sum(result["confusion_matrix"]) == 100

    data = load_mnist(mnist_file, 784)
    net = Network.load(tmp_path / "first" / "model.npz")
    predictions = net.predict(data.x_test.astype(np.float32) / 255)
    assert np.mean(predictions == data.y_test) == result["test_accuracy"]

    client = mlflow.MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0]
    assert run.info.run_name == "mlp-numpy"
    assert [point.step for point in client.get_metric_history(run.info.run_id, "test_accuracy")] == [30, 60]
    assert run.data.params["batch_size"] == "10"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"result.json", "model.npz", "confusion.png",
                                                                        "misclassified.png"}
    assert sorted(path.name for path in (tmp_path / "first_ckpt").iterdir()) == [".lock", "final.pt"]  # a finished run



def test_train_mlp_from_python_writes_what_the_command_writes(tmp_path, mnist_file):
    options = RunOptions(data=mnist_file, out=tmp_path / "python", seed=SEED, timing=tmp_path / "timing.json",
                         checkpoint_dir=tmp_path / "python_ckpt")
    result, timing = train_mlp(settings(epochs=1), TrainSettings.from_mapping({"threads": 1}), options)
    assert result == json.loads((tmp_path / "python" / "result.json").read_text())
    assert timing == json.loads((tmp_path / "timing.json").read_text()) and timing["train_seconds"] > 0
    assert result["misclassified_shown"] and len(result["misclassified_shown"]) <= 64

    assert cli.main(["train-mlp", "--data", str(mnist_file), "--seed", str(SEED), "--out", str(tmp_path / "cli"),
                     "--checkpoint-dir", str(tmp_path / "cli_ckpt"), "--threads", "1",
                     "--settings", json.dumps({"layers": [784, 16, 10], "epochs": 1})]) == 0
    for name in ("result.json", "model.npz", "confusion.png", "misclassified.png"):
        assert (tmp_path / "python" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name


@dataclasses.dataclass(frozen=True)
class MlpWithNewKey(MlpSettings):
    new_key: int = 0


def test_a_new_mlp_key_changes_the_checkpoint_fingerprint_unless_the_schema_marks_it_operational(monkeypatch):
    data = MnistArrays(**synthetic_mnist(20, 10))

    def fingerprint(**changes) -> str:
        config = MlpWithNewKey(**{**dataclasses.asdict(settings()), **changes})
        return MlpTraining(config, data, SEED).fingerprint("data md5")

    assert fingerprint(new_key=1) != fingerprint(new_key=2)
    assert fingerprint(learning_rate=0.5) != fingerprint()
    schema_marks = mlnb.settings.operational_keys
    monkeypatch.setattr(mlnb.settings, "operational_keys",
                        lambda name: schema_marks(name) | ({"new_key"} if name == "mlp" else set()))
    assert fingerprint(new_key=1) == fingerprint(new_key=2)

def write(tmp_path, **changes) -> str:
    arrays = {**synthetic_mnist(train=20, test=10), **changes}
    path = tmp_path / "bad.npz"
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return str(path)


@pytest.mark.parametrize(("changes", "message"), [
    ({"x_train": np.zeros((20, 20, 20), np.uint8)},
     r"bad\.npz: x_train: expected N x 28 x 28 digits \(N >= 1\), got shape \(20, 20, 20\)"),
    ({"x_test": np.zeros((10, 28, 28), np.float32)}, r"bad\.npz: x_test: expected uint8 images, got float32"),
    ({"y_train": np.full(20, 10, np.uint8)}, r"bad\.npz: y_train: label 10 outside 0\.\.9"),
    ({"y_test": np.full(10, 12, np.uint8)}, r"bad\.npz: y_test: label 12 outside 0\.\.9"),
    ({"x_train": np.zeros((0, 28, 28), np.uint8), "y_train": np.zeros(0, np.uint8)},
     r"bad\.npz: x_train: expected N x 28 x 28 digits \(N >= 1\), got shape \(0, 28, 28\)"),
    ({"y_train": np.zeros(19, np.uint8)}, r"20 images in x_train but y_train has shape \(19,\)"),
    ({"y_test": None}, r"bad\.npz: no array 'y_test'"),
])
def test_bad_data_is_refused_with_the_file_and_the_problem(tmp_path, changes, message, caplog):
    path = write(tmp_path, **changes)
    out = tmp_path / "out"
    assert cli.main(["train-mlp", "--data", path, "--seed", "1", "--out", str(out), "--epochs", "1",
                     "--checkpoint-dir", str(tmp_path / "checkpoints")]) == 2
    errors = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert len(errors) == 1 and re.search(message, errors[0]), errors
    assert not out.exists()


def test_unreadable_data_and_impossible_devices_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing\.npz: cannot read"):
        load_mnist(tmp_path / "missing.npz", 784)
    with pytest.raises(ConfigError, match=r"device 'cuda': the numpy backend runs on the CPU only"):
        MlpTraining(settings(), MnistArrays(**synthetic_mnist(20, 10)), SEED, "cuda")


@pytest.mark.parametrize("stop_after", [45, 60])  # mid-epoch (epochs are 30 steps), and at an epoch's end
def test_a_run_stopped_by_a_signal_resumes_into_the_uninterrupted_run(mnist_file, tmp_path, monkeypatch, stop_after):
    data, config = load_mnist(mnist_file, 784), settings(epochs=4)
    net, records, predictions, _ = train(config, data, SEED, tmp_path / "whole", checkpoint_every=7)

    step = MlpTraining.step

    def step_then_signal(self, number):
        metrics = step(self, number)
        if number == stop_after:
            os.kill(os.getpid(), signal.SIGUSR1)  # as Slurm's warning before the time limit
        return metrics

    monkeypatch.setattr(MlpTraining, "step", step_then_signal)
    with cooperative_stop() as stop, pytest.raises(Stopped, match="SIGUSR1"):
        train(config, data, SEED, tmp_path / "stopped", checkpoint_every=7, stop=stop)
    assert torch.load(tmp_path / "stopped" / "last.pt", weights_only=True)["step"] == stop_after
    monkeypatch.undo()
    resumed_net, resumed_records, resumed_predictions, _ = train(config, data, SEED, tmp_path / "stopped",
                                                                 checkpoint_every=7)

    def untimed(epochs):
        return [{key: value for key, value in record.items() if key not in ("seconds", "train_images_per_second")}
                for record in epochs]
    assert untimed(resumed_records) == untimed(records) and [r["step"] for r in records] == [30, 60, 90, 120]
    for ours, theirs in zip(resumed_net.weights + resumed_net.biases, net.weights + net.biases, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(resumed_predictions, predictions)


def test_a_checkpoint_of_other_settings_is_not_resumed(mnist_file, tmp_path, caplog):
    data = load_mnist(mnist_file, 784)
    train(settings(epochs=1), data, SEED, tmp_path / "checkpoints", checkpoint_every=7)
    assert (tmp_path / "checkpoints" / "last.pt").exists()  # the helper never calls finish(): as if under way
    _, records, _, _ = train(settings(epochs=1, learning_rate=0.5), data, SEED, tmp_path / "checkpoints")
    assert "written with other settings: starting afresh" in caplog.text and [r["step"] for r in records] == [30]
