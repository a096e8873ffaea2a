"""The DCGAN's training images: packed uint8 arrays, checked, padded to a power-of-two side.

Faces come as the alignment stage's ``faces.npy`` (N x S x S x 3, memory-mapped);
MNIST as ``mnist.npz`` (its ``x_train``, N x 28 x 28, read and checked by mlnb.data.mnist),
padded with black to 32 x 32, the next power of two, as the generator doubles its side from 4.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from mlnb.data.mnist import read_mnist_npz
from mlnb.errors import DataError


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".npz":
        return read_mnist_npz(path).x_train
    try:
        return np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a numpy array file ({error})") from None


def next_power_of_two(side: int) -> int:
    return max(8, 1 << (side - 1).bit_length())


def load_images(path: str | Path) -> np.ndarray:
    """N x S x S x C uint8 (C = 1 or 3), S a power of two >= 8; memory-mapped when no padding is needed."""
    path = Path(path)
    images = _read(path)
    if images.dtype != np.uint8:
        raise DataError(f"{path}: images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise DataError(f"{path}: expected N x H x W or N x H x W x 1|3 images, got shape {images.shape}")
    count, height, width = images.shape[:3]
    if count == 0:
        raise DataError(f"{path}: holds no images")
    if height != width:
        raise DataError(f"{path}: images must be square, got {height} x {width}")
    side = next_power_of_two(height)
    if side != height:
        before = (side - height) // 2
        padding = ((0, 0), (before, side - height - before), (before, side - height - before), (0, 0))
        images = np.pad(images, padding)
    return images
