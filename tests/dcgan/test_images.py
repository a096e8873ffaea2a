"""Training images: packed arrays read, checked and padded; bad files refused with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from mlnb.dcgan.images import load_images, next_power_of_two
from mlnb.errors import DataError


def test_faces_are_memory_mapped_unchanged(tmp_path):
    faces = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", faces)
    loaded = load_images(tmp_path / "faces.npy")
    assert isinstance(loaded, np.memmap) and np.array_equal(loaded, faces)


def test_mnist_is_padded_with_black_to_32_px(tmp_path):
    digits = np.full((3, 28, 28), 200, np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=digits, y_train=np.zeros(3, np.uint8), x_test=digits[:1],
             y_test=np.zeros(1, np.uint8))
    loaded = load_images(tmp_path / "mnist.npz")
    assert loaded.shape == (3, 32, 32, 1)
    assert np.all(loaded[:, 2:30, 2:30] == 200) and loaded.sum() == 200 * 3 * 28 * 28


def test_next_power_of_two():
    assert [next_power_of_two(side) for side in (3, 8, 28, 32, 33, 64)] == [8, 8, 32, 32, 64, 64]


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((0, 64, 64, 3), np.uint8), "holds no images"),
    (np.zeros((2, 64, 48, 3), np.uint8), "must be square, got 64 x 48"),
    (np.zeros((2, 64, 64, 3), np.float32), "must be uint8, got float32"),
    (np.zeros((2, 64, 64, 4), np.uint8), r"N x H x W x 1\|3 images, got shape \(2, 64, 64, 4\)"),
    (np.zeros((64, 64), np.uint8), "got shape"),
])
def test_bad_arrays_are_refused_naming_the_file(tmp_path, array, message):
    np.save(tmp_path / "faces.npy", array)
    with pytest.raises(DataError, match=message) as caught:
        load_images(tmp_path / "faces.npy")
    assert str(tmp_path / "faces.npy") in str(caught.value)


def test_missing_truncated_and_keyless_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_images(tmp_path / "none.npy")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match="not a numpy array file"):
        load_images(tmp_path / "bad.npy")
    np.savez(tmp_path / "other.npz", images=np.zeros((1, 8, 8), np.uint8))
    with pytest.raises(DataError, match=r"other\.npz: no array 'x_train' \(has images;"):
        load_images(tmp_path / "other.npz")
