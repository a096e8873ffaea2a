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
