"""Dice and HD95 against hand-computed cases and a brute-force surface distance, empty masks included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from mlnb.segment.metrics import case_metrics, dice, hd95, surface


def box(shape, *window):
    mask = np.zeros(shape, bool)
    mask[tuple(slice(*pair) for pair in window)] = True
    return mask


def test_dice_by_hand_and_for_empty_masks():
    a, b = box((4, 10, 10), (0, 2), (0, 5), (0, 5)), box((4, 10, 10), (0, 2), (0, 5), (2, 7))
    assert dice(a, b) == pytest.approx(2 * 30 / (50 + 50))
    empty = np.zeros_like(a)
    assert dice(empty, empty) == 1.0 and dice(a, empty) == 0.0 and dice(empty, a) == 0.0


def test_hd95_of_a_shifted_box_is_the_shift_in_millimetres():
    a = box((10, 20, 20), (2, 8), (5, 12), (5, 12))
    b = box((10, 20, 20), (2, 8), (5, 12), (8, 15))  # 3 voxels along the columns
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.0)
    assert hd95(a, b, (2.0, 1.0, 0.5)) == pytest.approx(1.5)  # honours the spacing
    assert hd95(a, a, (1.0, 1.0, 1.0)) == 0.0


def test_hd95_agrees_with_brute_force_surface_distances():
    rng = np.random.default_rng(0)
    a = rng.random((8, 16, 16)) > 0.7
    b = rng.random((8, 16, 16)) > 0.7
    spacing = (2.5, 1.0, 0.8)
    points = [np.argwhere(surface(mask)) * spacing for mask in (a, b)]
    distances = cdist(*points)
    expected = max(np.percentile(distances.min(axis=1), 95), np.percentile(distances.min(axis=0), 95))
    assert hd95(a, b, spacing) == pytest.approx(expected)


def test_hd95_conventions_for_empty_masks_and_per_label_means():
    a = box((4, 6, 8), (0, 2), (0, 3), (0, 3))
    empty = np.zeros_like(a)
    assert hd95(empty, empty, (1.0, 1.0, 1.0)) == 0.0
    diagonal = np.sqrt((4 * 2.0) ** 2 + 6 ** 2 + 8 ** 2)
    assert hd95(a, empty, (2.0, 1.0, 1.0)) == pytest.approx(diagonal) == hd95(empty, a, (2.0, 1.0, 1.0))
    truth = a.astype(np.uint8) + 2 * box((4, 6, 8), (2, 4), (3, 6), (3, 8))
    predicted = np.where(truth == 2, 0, truth)  # label 2 missed entirely
    scores = case_metrics(predicted, truth, (2.0, 1.0, 1.0), [0, 1, 2])
    assert scores["labels"]["1"] == {"dice": 1.0, "hd95": 0.0}
    assert scores["labels"]["2"]["dice"] == 0.0 and scores["labels"]["2"]["hd95"] == pytest.approx(diagonal)
    assert scores["dice"] == 0.5 and not np.isnan(scores["hd95"])
