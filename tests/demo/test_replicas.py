from __future__ import annotations

import csv
import json
import zipfile

import numpy as np
import pytest

from mlnb.data import celeba, mnist
from mlnb.demo import replicas


@pytest.fixture(scope="module")
def celeba_replica(tmp_path_factory):
    out = tmp_path_factory.mktemp("celeba")
    replicas.build("celeba", out, seed=5)
    return out


def test_mnist_replica_is_real_mnist_in_idx(tmp_path):
    replicas.build("mnist", tmp_path, seed=5)
    x_train, y_train = mnist.load_split(tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz")
    x_test, y_test = mnist.load_split(tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert (len(x_train), len(x_test)) == (4000, 1000)
    assert np.bincount(np.concatenate([y_train, y_test])).tolist() == [500] * 10


def test_mnist_replica_same_seed_same_bytes(tmp_path):
    replicas.build("mnist", tmp_path / "a", seed=5)
    replicas.build("mnist", tmp_path / "b", seed=5)
    for path in sorted((tmp_path / "a").glob("*.gz")):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_same_seed_same_bytes(tmp_path, celeba_replica):
    replicas.build("celeba", tmp_path, seed=5)
    for name in ("img_align_celeba.zip", "list_landmarks_align_celeba.txt", "list_eval_partition.txt"):
        assert (tmp_path / name).read_bytes() == (celeba_replica / name).read_bytes(), name


def test_other_seed_other_jitter(tmp_path, celeba_replica):
    replicas.build("celeba", tmp_path, seed=6)
    assert (tmp_path / "img_align_celeba.zip").read_bytes() != (celeba_replica / "img_align_celeba.zip").read_bytes()


def test_celeba_replica_passes_the_real_checks(tmp_path, celeba_replica):
    counts = celeba.prepare(celeba_replica / "img_align_celeba.zip",
                            celeba_replica / "list_landmarks_align_celeba.txt",
                            celeba_replica / "list_eval_partition.txt", tmp_path / "index.csv")
    assert counts["images"] > 80
    assert counts["train"] > counts["valid"] > 0


def test_celeba_landmarks_follow_the_recorded_jitter(celeba_replica):
    record = json.loads((celeba_replica / "replica_record.json").read_text())
    rows = {row["image_id"]: row for row in csv.DictReader(open_index(celeba_replica))}
    assert record["jitter"]["000001.jpg"]["source"] == "astronaut"
    for name in ("000001.jpg", "000005.jpg", "000050.jpg"):
        jitter = record["jitter"][name]
        matrix = np.array(jitter["matrix"])
        # The jitter is a similarity: equal scale on both axes, no shear.
        linear = matrix[:, :2]
        assert np.allclose(linear @ linear.T, np.eye(2) * (linear @ linear.T)[0, 0], atol=1e-9)
        expected = np.array(jitter["source_landmarks"]) @ linear.T + matrix[:, 2]
        written = np.array([float(rows[name][k]) for k in celeba.LANDMARK_COLUMNS]).reshape(5, 2)
        np.testing.assert_array_equal(written, np.round(expected))


def open_index(folder):
    with zipfile.ZipFile(folder / "img_align_celeba.zip") as archive:
        names = [n.rsplit("/", 1)[1] for n in archive.namelist()]
    lines = (folder / "list_landmarks_align_celeba.txt").read_text().splitlines()
    header = "image_id," + ",".join(lines[1].split())
    rows = [",".join(line.split()) for line in lines[2:]]
    assert [row.split(",")[0] for row in rows] == names
    return [header, *rows]


def test_heart_replica_is_an_msd_task(tmp_path):
    import tarfile

    replicas.build("heart", tmp_path, seed=5)
    with tarfile.open(tmp_path / "Task02_Heart.tar") as archive:
        names = archive.getnames()
        dataset = json.loads(archive.extractfile("Task02_Heart/dataset.json").read())
    assert "Task02_Heart/imagesTr/la_001.nii.gz" in names and "Task02_Heart/labelsTr/la_004.nii.gz" in names
    assert dataset["numTraining"] == len(dataset["training"]) == 4
