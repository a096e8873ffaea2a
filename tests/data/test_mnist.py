from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from mlnb.data import mnist
from mlnb.errors import DataError


def write_raw(path, payload: bytes):
    with gzip.open(path, "wb") as handle:
        handle.write(payload)
    return path


@pytest.fixture()
def split(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 4, 5, 9], np.uint8)
    mnist.write_idx(images, tmp_path / "images.gz")
    mnist.write_idx(labels, tmp_path / "labels.gz")
    return images, labels, tmp_path / "images.gz", tmp_path / "labels.gz"


def test_idx_round_trip(split):
    images, labels, images_path, labels_path = split
    np.testing.assert_array_equal(mnist.read_idx(images_path), images)
    np.testing.assert_array_equal(mnist.read_idx(labels_path), labels)


def test_prepare_packs_npz(split, tmp_path):
    images, labels, images_path, labels_path = split
    out = tmp_path / "mnist.npz"
    counts = mnist.prepare(images_path, labels_path, images_path, labels_path, out)
    assert counts == {"train": 7, "test": 7}
    with np.load(out) as data:
        np.testing.assert_array_equal(data["x_train"], images)
        np.testing.assert_array_equal(data["y_test"], labels)
        assert data["x_train"].dtype == np.uint8


def test_prepare_writes_exactly_the_name_given(split, tmp_path):
    """Given a name without .npz, numpy used to write elsewhere and leave a 0-byte file under the name."""
    images, labels, images_path, labels_path = split
    out = tmp_path / "packed" / "mnist_data"
    mnist.prepare(images_path, labels_path, images_path, labels_path, out)
    assert [path.name for path in out.parent.iterdir()] == ["mnist_data"]
    with np.load(out) as data:
        np.testing.assert_array_equal(data["x_test"], images)


def test_an_empty_split_is_refused(split, tmp_path):
    """A header declaring 0 images used to give an mnist.npz without digits, and exit 0."""
    images, labels, images_path, labels_path = split
    mnist.write_idx(np.zeros((0, 28, 28), np.uint8), tmp_path / "none.gz")
    mnist.write_idx(np.zeros(0, np.uint8), tmp_path / "no-labels.gz")
    with pytest.raises(DataError, match=r"none\.gz: holds no images"):
        mnist.prepare(images_path, labels_path, tmp_path / "none.gz", tmp_path / "no-labels.gz", tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_truncated_idx_names_file(split, tmp_path):
    _, _, images_path, _ = split
    raw = gzip.open(images_path).read()
    bad = write_raw(tmp_path / "cut.gz", raw[:-100])
    with pytest.raises(DataError, match=r"cut\.gz.*truncated"):
        mnist.read_idx(bad)


def test_trailing_bytes_rejected(split, tmp_path):
    _, _, images_path, _ = split
    bad = write_raw(tmp_path / "long.gz", gzip.open(images_path).read() + b"\0")
    with pytest.raises(DataError, match=r"long\.gz.*trailing"):
        mnist.read_idx(bad)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00", "magic"),
        (b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00", "type code 0x0d"),
        (b"\x00\x00\x08\x03" + struct.pack(">I", 1), "header truncated"),
    ],
)
def test_malformed_headers(tmp_path, payload, message):
    bad = write_raw(tmp_path / "bad.gz", payload)
    with pytest.raises(DataError, match=rf"bad\.gz.*{message}"):
        mnist.read_idx(bad)


def test_not_gzip_is_clear(tmp_path):
    bad = tmp_path / "notgz.gz"
    bad.write_bytes(b"plain text, not gzip")
    with pytest.raises(DataError, match=r"notgz\.gz: cannot read"):
        mnist.read_idx(bad)


def test_count_mismatch_names_both_files(split, tmp_path):
    images, _, images_path, _ = split
    mnist.write_idx(np.zeros(3, np.uint8), tmp_path / "few.gz")
    with pytest.raises(DataError, match=r"7 images but .*few\.gz has 3 labels"):
        mnist.load_split(images_path, tmp_path / "few.gz")


def test_label_out_of_range(split, tmp_path):
    _, _, images_path, _ = split
    mnist.write_idx(np.full(7, 12, np.uint8), tmp_path / "labels12.gz")
    with pytest.raises(DataError, match="label 12 outside"):
        mnist.load_split(images_path, tmp_path / "labels12.gz")


def test_wrong_image_shape(tmp_path):
    mnist.write_idx(np.zeros((2, 8, 8), np.uint8), tmp_path / "small.gz")
    mnist.write_idx(np.zeros(2, np.uint8), tmp_path / "l.gz")
    with pytest.raises(DataError, match=r"small\.gz: expected N x 28 x 28"):
        mnist.load_split(tmp_path / "small.gz", tmp_path / "l.gz")


def test_failed_prepare_leaves_no_output(split, tmp_path):
    _, _, images_path, _ = split
    out = tmp_path / "mnist.npz"
    with pytest.raises(DataError):
        mnist.prepare(images_path, images_path, images_path, images_path, out)
    assert list(tmp_path.glob("mnist*")) == []


def test_read_mnist_npz_gives_back_what_prepare_wrote(split, tmp_path):
    images, labels, images_path, labels_path = split
    mnist.prepare(images_path, labels_path, images_path, labels_path, tmp_path / "mnist.npz")
    arrays = mnist.read_mnist_npz(tmp_path / "mnist.npz")
    for array in (arrays.x_train, arrays.x_test):
        np.testing.assert_array_equal(array, images)
    for array in (arrays.y_train, arrays.y_test):
        np.testing.assert_array_equal(array, labels)


def write_npz(path, **changes):
    """A valid 4-train, 2-test MNIST .npz with ``changes`` applied (None drops the key)."""
    arrays = {"x_train": np.zeros((4, 28, 28), np.uint8), "y_train": np.array([0, 3, 9, 1], np.uint8),
              "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.array([5, 7], np.int64), **changes}
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


@pytest.mark.parametrize(("changes", "message"), [
    ({"x_train": None}, r"no array 'x_train' \(has x_test, y_test, y_train; an MNIST \.npz holds x_train, y_train, "
                        r"x_test, y_test\)"),
    ({"y_train": None}, r"no array 'y_train'"),
    ({"x_test": None}, r"no array 'x_test'"),
    ({"y_test": None}, r"no array 'y_test'"),
    ({"x_train": np.zeros((4, 28, 28), np.float32)}, r"x_train: expected uint8 images, got float32"),
    ({"x_test": np.zeros((2, 28, 28), np.int16)}, r"x_test: expected uint8 images, got int16"),
    ({"y_train": np.array([0, 3, 9, 1], np.float64)}, r"y_train: labels must be integers, got float64"),
    ({"y_test": np.array([True, False])}, r"y_test: labels must be integers, got bool"),
    ({"x_train": np.zeros((4, 32, 32), np.uint8)}, r"x_train: expected N x 28 x 28 digits \(N >= 1\), "
                                                   r"got shape \(4, 32, 32\)"),
    ({"x_test": np.zeros((2, 784), np.uint8)}, r"x_test: expected N x 28 x 28 digits \(N >= 1\), got shape \(2, 784\)"),
    ({"x_train": np.zeros((0, 28, 28), np.uint8), "y_train": np.zeros(0, np.uint8)},
     r"x_train: expected N x 28 x 28 digits \(N >= 1\), got shape \(0, 28, 28\)"),
    ({"y_train": np.zeros(3, np.uint8)}, r"4 images in x_train but y_train has shape \(3,\)"),
    ({"y_test": np.zeros((2, 1), np.uint8)}, r"2 images in x_test but y_test has shape \(2, 1\)"),
    ({"y_train": np.array([0, 3, 10, 1], np.uint8)}, r"y_train: label 10 outside 0\.\.9 \(1 of 4\)"),
    ({"y_test": np.array([-1, 7], np.int64)}, r"y_test: label -1 outside 0\.\.9 \(1 of 2\)"),
])
def test_read_mnist_npz_names_the_file_and_the_bad_array(tmp_path, changes, message):
    path = write_npz(tmp_path / "bad.npz", **changes)
    with pytest.raises(DataError, match=message) as caught:
        mnist.read_mnist_npz(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_read_mnist_npz_accepts_any_integer_labels(tmp_path):
    arrays = mnist.read_mnist_npz(write_npz(tmp_path / "m.npz", y_train=np.array([0, 3, 9, 1], np.int32)))
    assert arrays.y_train.tolist() == [0, 3, 9, 1] and arrays.y_test.tolist() == [5, 7]


@pytest.mark.parametrize(("content", "message"), [
    (None, r"missing\.npz: cannot read the MNIST \.npz \(FileNotFoundError"),
    (b"not data\n", r"bad\.npz: cannot read the MNIST \.npz \(ValueError"),
    (b"PK\x03\x04 a zip header, then nothing", r"bad\.npz: cannot read the MNIST \.npz \(BadZipFile"),
])
def test_read_mnist_npz_refuses_unreadable_files(tmp_path, content, message):
    path = tmp_path / ("missing.npz" if content is None else "bad.npz")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        mnist.read_mnist_npz(path)


def test_read_mnist_npz_refuses_a_single_array(tmp_path):
    with open(tmp_path / "digits.npz", "wb") as handle:  # an .npy under an .npz name
        np.save(handle, np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match=r"digits\.npz: cannot read the MNIST \.npz \(ValueError: a single uint8 "
                                        r"array of shape \(2, 28, 28\), not an \.npz archive"):
        mnist.read_mnist_npz(tmp_path / "digits.npz")
