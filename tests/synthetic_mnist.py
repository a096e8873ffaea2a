"""A small, learnable, MNIST-shaped .npz for the training stages' tests (fixture ``mnist_npz`` in conftest.py)."""

from __future__ import annotations

import numpy as np

from mlnb.rng import generator


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """28 x 28 uint8 'digits': class k is a bright bar on row 2 + 2k, over noise."""
    rng = generator(seed, "synthetic-digits")
    labels = np.arange(count) % 10
    images = rng.integers(0, 60, size=(count, 28, 28), dtype=np.uint8)
    for index, label in enumerate(labels):
        images[index, 2 + 2 * label, 4:24] = 255
    order = rng.permutation(count)
    return images[order], labels[order].astype(np.uint8)


def write_mnist_npz(path, train: int = 200, test: int = 50, **overrides) -> str:
    x_train, y_train = synthetic_digits(train, 1)
    x_test, y_test = synthetic_digits(test, 2)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, **overrides}
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return str(path)
