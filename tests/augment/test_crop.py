"""Crop to the segmentation: what the blog's ``cropit`` meant (min/max of the hits, a true square)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mlnb.augment import CropToSegmentation, Pair, augment
from mlnb.augment.pair import Trace

MODES = ("fused", "sequential")


def window(plane, rows=None, cols=None, margin=5):
    """The crop window for a segmentation covering rows x cols (None: no segmentation)."""
    mask = None
    if rows is not None:
        mask = np.zeros((*plane, 1), bool)
        mask[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    trace = Trace("test", "volume")
    return CropToSegmentation(margin).window(plane, lambda: mask, trace), trace.notes


@pytest.mark.parametrize(
    ("plane", "rows", "cols", "expected"),
    [
        ((100, 60), None, None, (0, 20, 60)),  # no segmentation: centre crop
        ((100, 60), (5, 15), (10, 20), (0, 0, 60)),  # near the top: slides up, margin kept
        ((100, 60), (80, 90), (10, 20), (0, 36, 60)),  # near the bottom: ends 5 below row 90
        ((100, 60), (30, 60), (10, 20), (0, 20, 60)),  # already inside: stays centred
        ((60, 101), (10, 20), (2, 12), (1, 0, 60)),  # wide image: slides along the columns
        ((60, 101), (10, 20), (70, 95), (1, 41, 60)),
        ((100, 60), (10, 95), (0, 5), (0, 23, 60)),  # taller than the window: centred on it
        ((64, 64), (0, 3), (0, 3), (1, 0, 64)),  # square already: nothing to crop
    ],
)
def test_crop_window_keeps_the_segmentation_in_view(plane, rows, cols, expected):
    (axis, start, side), notes = window(plane, rows, cols)
    assert (axis, start, side) == expected and notes == []


def test_an_empty_segmentation_falls_back_to_a_centre_crop_and_says_so(caplog):
    mask = np.zeros((100, 60, 1), bool)
    trace = Trace("case.nii.gz", "volume")
    with caplog.at_level(logging.WARNING):
        assert CropToSegmentation().window((100, 60), lambda: mask, trace) == (0, 20, 60)
    assert trace.notes == ["empty segmentation: centre crop instead of a crop around it"]
    assert "case.nii.gz: empty segmentation" in caplog.text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("plane", [(61, 40), (40, 61), (41, 41)])
def test_crops_are_square_and_keep_every_labelled_pixel(mode, plane):
    image = np.random.default_rng(1).random((*plane, 3)).astype(np.float32)
    seg = np.zeros((*plane, 3), np.uint8)
    seg[plane[0] - 12:plane[0] - 8, plane[1] - 12:plane[1] - 8, 1] = 2  # near the far corner
    out = augment(Pair(image, seg, "volume"), [CropToSegmentation(5)], mode)
    side = min(plane)
    assert out.image.shape == (side, side, 3)
    assert np.count_nonzero(out.seg) == np.count_nonzero(seg)
    # The crop is a pure shift: the pixels are the input's, unchanged, and the grid says where from.
    top, left = (int(offset) for offset in out.grid[:2, 3])
    np.testing.assert_array_equal(out.image, image[top:top + side, left:left + side])
