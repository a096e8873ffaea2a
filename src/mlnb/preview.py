"""Preview images: tile many small images into one grid (a few lines of numpy, no torchvision)."""

from __future__ import annotations

import math

import numpy as np


def image_grid(images: np.ndarray, columns: int | None = None, padding: int = 2, fill: int = 255) -> np.ndarray:
    """Tile N images (N x H x W or N x H x W x C, uint8) into one uint8 grid image.

    ``columns`` defaults to a square-ish layout; unused cells are left at ``fill``.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4) or len(images) == 0:
        raise ValueError(f"image_grid needs N x H x W[ x C] images, got shape {images.shape}")
    count, height, width = images.shape[:3]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    shape = (rows * (height + padding) + padding, columns * (width + padding) + padding, *images.shape[3:])
    grid = np.full(shape, fill, dtype=np.uint8)
    for number, image in enumerate(images):
        row, column = divmod(number, columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[top:top + height, left:left + width] = image
    return grid


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Scale an image of any range to uint8 for display (min -> 0, max -> 255)."""
    image = np.asarray(image, dtype=np.float64)
    low, high = np.nanmin(image), np.nanmax(image)
    if high <= low:
        return np.zeros(image.shape, np.uint8)
    return np.round((image - low) / (high - low) * 255).astype(np.uint8)
