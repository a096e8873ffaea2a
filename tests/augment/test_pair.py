"""Checking inputs: every bad pair is a DataError naming the file and the problem."""

from __future__ import annotations

import numpy as np
import pytest

from mlnb.augment import Pair
from mlnb.augment.pair import LabelCodes
from mlnb.errors import DataError


def test_kinds_follow_the_blogs_rule_unless_given():
    assert Pair(np.zeros((4, 5))).kind == "grey"
    assert Pair(np.zeros((4, 5, 3))).kind == "rgb"
    assert Pair(np.zeros((4, 5, 7))).kind == "volume"
    assert Pair(np.zeros((4, 5, 3)), kind="volume").kind == "volume"


@pytest.mark.parametrize(
    ("image", "seg", "kind", "message"),
    [
        (np.zeros((4, 5, 6)), np.zeros((4, 5, 7), np.uint8), None,
         r"seg\.nii: segmentation shape \(4, 5, 7\) differs from the shape \(4, 5, 6\) of its image img\.nii"),
        (np.zeros((4, 5, 3)), np.zeros((4, 5, 3), np.uint8), "rgb", r"seg\.nii: segmentation shape \(4, 5, 3\)"),
        (np.zeros((4, 5)), np.full((4, 5), 0.5, np.float32), None,
         r"seg\.nii: the segmentation is not integer-valued \(20 values like 0\.5"),
        (np.zeros((4, 5)), np.full((4, 5), np.nan), None, r"seg\.nii: the segmentation is not integer-valued"),
        (np.array([[1.0, np.nan], [np.inf, 0.0]]), None, None, r"img\.nii: the image holds 2 NaN or infinite values"),
        (np.zeros((4, 5, 6, 2)), None, None, r"img\.nii: a 4-D image of shape \(4, 5, 6, 2\)"),
        (np.zeros((4,)), None, None, r"img\.nii: a 1-D image"),
        (np.zeros((0, 5)), None, None, r"img\.nii: the image is empty"),
        (np.zeros((4, 5), complex), None, None, r"img\.nii: unsupported image dtype complex128"),
        (np.zeros((4, 5, 4)), None, "rgb", r"img\.nii: shape \(4, 5, 4\) is not a rgb image"),
        (np.zeros((4, 5)), None, "movie", r"img\.nii: unknown image kind 'movie'"),
    ],
)
def test_bad_input_is_a_clear_error_naming_the_file(image, seg, kind, message):
    with pytest.raises(DataError, match=message):
        Pair(image, seg, kind=kind, source="img.nii", seg_source="seg.nii")


def test_integer_valued_float_segmentations_are_accepted():
    Pair(np.zeros((4, 5)), np.ones((4, 5), np.float32))


@pytest.mark.parametrize(
    "labels",
    [
        np.array([0, 1, 2, 255], np.uint8),
        np.array([-7, 0, 300, 32767], np.int16),
        np.array([-7, 0, 300, 32767], ">i2"),
        np.array([False, True, True, False]),
        np.array([0, 70000, -5, 2**40], np.int64),
        np.array([-5, 70000, 3, 3], np.int32),  # no background at all
        np.array([0.0, 2.0, -1.0, 5.0], np.float32),
    ],
)
def test_label_codes_round_trip_and_code_zero_is_the_background(labels):
    seg = np.resize(labels, (3, 4, 2))
    codes = LabelCodes.encode(seg, "volume")
    assert codes.codes.dtype in (np.uint8, np.uint16) and codes.codes.shape == (3, 4, 2)
    decoded = codes.decode(codes.codes, "volume")
    assert decoded.dtype == seg.dtype
    np.testing.assert_array_equal(decoded, seg)
    np.testing.assert_array_equal(codes.codes != 0, seg != 0)
