from __future__ import annotations

import numpy as np
import pytest

from mlnb.preview import image_grid, to_uint8


def test_grid_places_each_image():
    images = np.stack([np.full((4, 5, 3), value, np.uint8) for value in (10, 20, 30)])
    grid = image_grid(images, columns=2, padding=1, fill=255)
    assert grid.shape == (2 * 5 + 1, 2 * 6 + 1, 3)
    assert (grid[1:5, 1:6] == 10).all() and (grid[1:5, 7:12] == 20).all() and (grid[6:10, 1:6] == 30).all()
    assert (grid[6:10, 7:12] == 255).all()  # the empty cell


def test_grid_rejects_bad_shapes():
    with pytest.raises(ValueError, match="N x H x W"):
        image_grid(np.zeros((4, 4), np.uint8))


def test_to_uint8_spans_full_range_and_handles_constants():
    out = to_uint8(np.array([[-1.0, 0.0, 1.0]]))
    assert out.tolist() == [[0, 128, 255]]
    assert to_uint8(np.ones((2, 2))).max() == 0
