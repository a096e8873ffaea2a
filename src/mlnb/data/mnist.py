"""MNIST: read and check IDX files, pack them into one compressed ``.npz``, read that back checked.

IDX layout (big-endian): two zero bytes, a type code (0x08 = unsigned byte), the
number of dimensions, one uint32 per dimension, then the data.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from mlnb.errors import DataError, describe
from mlnb.io import atomic_path

UBYTE = 0x08
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzipped) of unsigned bytes, checking its header and length."""
    path = Path(path)
    try:
        with _open(path) as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read IDX file ({error})") from error
    if len(raw) < 4:
        raise DataError(f"{path}: IDX file too short for a header ({len(raw)} bytes)")
    zero1, zero2, type_code, ndim = raw[:4]
    if zero1 or zero2:
        raise DataError(f"{path}: bad IDX magic number {raw[:4].hex()} (must start with two zero bytes)")
    if type_code != UBYTE:
        raise DataError(f"{path}: IDX type code 0x{type_code:02x} unsupported (MNIST uses 0x08, unsigned byte)")
    if ndim == 0:
        raise DataError(f"{path}: IDX header declares zero dimensions")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: IDX header truncated (needs {header_size} bytes, file has {len(raw)})")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(raw) - header_size
    if actual != expected:
        raise DataError(
            f"{path}: IDX data has {actual} bytes but header shape {shape} needs {expected}"
            + (" (file truncated)" if actual < expected else " (trailing bytes)")
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def write_idx(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write a uint8 array as a gzipped IDX file (used to build the offline replica)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    # No file name and no time stamp in the gzip header: the same array gives the same bytes.
    with atomic_path(path) as tmp, open(tmp, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
        handle.write(header + array.tobytes())


def load_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{images_path}: expected N x 28 x 28 images, got shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-D label vector, got shape {labels.shape}")
    if not len(images):
        raise DataError(f"{images_path}: holds no images (header shape {images.shape})")
    if len(images) != len(labels):
        raise DataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DataError(f"{labels_path}: label {int(labels.max())} outside 0..9")
    return images, labels


def prepare(train_images: Path, train_labels: Path, test_images: Path, test_labels: Path, out: Path) -> dict[str, int]:
    """Check the four IDX files and pack them into the ``.npz`` ``out``; the digits per split."""
    x_train, y_train = load_split(Path(train_images), Path(train_labels))
    x_test, y_test = load_split(Path(test_images), Path(test_labels))
    # Through an open file: given a name, numpy would add ".npz" to one that lacks it.
    with atomic_path(out) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return {"train": len(x_train), "test": len(x_test)}


@dataclasses.dataclass(frozen=True)
class MnistArrays:
    """The four arrays of a prepared ``mnist.npz``: uint8 N x 28 x 28 digits and their labels 0..9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def read_mnist_npz(path: str | os.PathLike) -> MnistArrays:
    """The arrays prepare-mnist wrote to ``path``, every key, dtype, shape and label checked.

    The one reader of ``mnist.npz``: what passes here is what :func:`prepare` could have
    written, so no consumer needs checks of its own.
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(f"a single {loaded.dtype} array of shape {loaded.shape}, not an .npz archive")
        with loaded as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: cannot read the MNIST .npz ({describe(error)}; prepare-mnist writes one)") from None
    for key in NPZ_KEYS:
        if key not in arrays:
            raise DataError(f"{path}: no array {key!r} (has {', '.join(sorted(arrays)) or 'none'}; "
                            f"an MNIST .npz holds {', '.join(NPZ_KEYS)})")
    for split in ("train", "test"):
        _check_split(path, split, arrays[f"x_{split}"], arrays[f"y_{split}"])
    return MnistArrays(**{key: arrays[key] for key in NPZ_KEYS})


def _check_split(path: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE or len(images) == 0:
        raise DataError(f"{path}: x_{split}: expected N x 28 x 28 digits (N >= 1), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise DataError(f"{path}: x_{split}: expected uint8 images, got {images.dtype}")
    if labels.shape != (len(images),):
        raise DataError(f"{path}: {len(images)} images in x_{split} but y_{split} has shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: y_{split}: labels must be integers, got {labels.dtype}")
    outside = labels[(labels < 0) | (labels >= NUM_CLASSES)]
    if outside.size:
        raise DataError(f"{path}: y_{split}: label {int(outside[0])} outside 0..{NUM_CLASSES - 1} "
                        f"({outside.size} of {labels.size})")

