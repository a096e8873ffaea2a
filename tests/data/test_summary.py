from __future__ import annotations

import json
import math

import numpy as np

from mlnb.data import celeba, mnist, msd, summary
from mlnb.data.celeba_format import FILES
from mlnb.demo import replicas
from mlnb.io import file_md5
from mlnb.tracking import TrackingOptions


def test_mnist_summary_counts_classes(tmp_path):
    images = np.zeros((12, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = 255
    labels = np.array([0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9], np.uint8)
    np.savez(tmp_path / "m.npz", x_train=images, y_train=labels, x_test=images[:2], y_test=labels[:2])
    stats, preview = summary.mnist_summary(tmp_path / "m.npz")
    assert stats["train_images"] == 12 and stats["test_images"] == 2
    assert stats["train_class_1"] == 2 and stats["train_class_9"] == 2 and stats["train_class_0"] == 1
    assert stats["pixel_mean"] == 255 * 64 / 784
    assert preview.dtype == np.uint8 and preview.shape == (10 * 30 + 2, 10 * 30 + 2)


def test_heart_summary_counts_label_voxels(tmp_path):
    record = replicas.build("heart", tmp_path / "replica", seed=2)
    rows = msd.prepare(tmp_path / "replica" / "Task02_Heart.tar", tmp_path / "x", tmp_path / "index.csv")
    stats, preview = summary.heart_summary(tmp_path / "index.csv", tile=64)
    assert stats["cases"] == len(rows) == 8
    voxels = sum(math.prod(case["crop"]) for case in record["cases"].values())
    assert sum(v for k, v in stats.items() if k.startswith("label_")) == voxels
    assert preview.shape[2] == 3


def test_fit_into_square_keeps_aspect():
    image = np.full((20, 40, 3), 200, np.uint8)
    tile = summary.fit_into_square(image, 80)
    assert tile.shape == (80, 80, 3)
    assert (tile[:, :, 0] == 200).sum() == 80 * 40  # 40 rows of 80 filled, the rest padding
    assert tile[0, 0, 0] == 0 and tile[40, 40, 0] == 200


def test_overlay_leaves_background_grey():
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    labels = np.zeros((4, 4), np.int64)
    labels[0, 0] = 1
    out = summary.overlay(image, labels)
    assert np.all(out[1:, :, 0] == out[1:, :, 1]) and np.all(out[1:, :, 1] == out[1:, :, 2])
    assert not (out[0, 0, 0] == out[0, 0, 1] == out[0, 0, 2])


def test_log_data_writes_the_summary_and_previews_and_logs_its_run(tmp_path, mlflow_uri):
    import mlflow

    demo = {folder.name: folder for folder in replicas.build_replicas(tmp_path / "demo", seed=1)}
    raw = demo["mnist"]
    mnist_npz = tmp_path / "mnist.npz"
    mnist.prepare(raw / "train-images-idx3-ubyte.gz", raw / "train-labels-idx1-ubyte.gz",
                  raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz", mnist_npz)
    celeba_zip, celeba_index = demo["celeba"] / FILES["images"], tmp_path / "celeba.csv"
    celeba.prepare(celeba_zip, demo["celeba"] / FILES["landmarks"], demo["celeba"] / FILES["partition"], celeba_index)
    heart_index = tmp_path / "heart.csv"
    msd.prepare(demo["heart"] / "Task02_Heart.tar", tmp_path / "heart", heart_index)
    out = tmp_path / "report"

    logged = summary.log_data(mnist_npz, celeba_index, celeba_zip, heart_index, out,
                              TrackingOptions(tracking_uri=mlflow_uri, experiment="tests"))
    assert json.loads((out / "summary.json").read_text()) == logged
    assert logged["mnist"]["train_images"] == 4000 and logged["heart"]["cases"] == 8
    assert sorted(path.name for path in out.iterdir()) == [
        "celeba_preview.png", "heart_preview.png", "mnist_preview.png", "summary.json"]
    client = mlflow.MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    inputs = {"mnist": mnist_npz, "celeba_index": celeba_index, "celeba_zip": celeba_zip, "heart_index": heart_index}
    assert run.info.run_name == "data" and run.data.params == {
        **{name: str(path) for name, path in inputs.items()}, "out": str(out),
        **{f"input_md5.{name}": file_md5(path) for name, path in inputs.items()}}
    assert run.data.metrics["celeba.images"] == logged["celeba"]["images"]
