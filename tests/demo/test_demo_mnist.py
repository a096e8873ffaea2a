from __future__ import annotations

import numpy as np

from mlnb.data import mnist
from mlnb.demo import replicas


def test_mnist_replica_is_real_mnist_in_idx(tmp_path):
    replicas.build("mnist", tmp_path, seed=5)
    x_train, y_train = mnist.load_split(tmp_path / "train-images-idx3-ubyte.gz",
                                        tmp_path / "train-labels-idx1-ubyte.gz")
    x_test, y_test = mnist.load_split(tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert (len(x_train), len(x_test)) == (4000, 1000)
    assert np.bincount(np.concatenate([y_train, y_test])).tolist() == [500] * 10


def test_mnist_replica_same_seed_same_bytes(tmp_path):
    replicas.build("mnist", tmp_path / "a", seed=5)
    replicas.build("mnist", tmp_path / "b", seed=5)
    for path in sorted((tmp_path / "a").glob("*.gz")):
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name
