"""A classifier's figures, drawn once for the CNN and the MLP: confusion counts, the confusion figure, the
misclassified grid."""

from __future__ import annotations

import numpy as np
import PIL.Image

from mlnb.training.figures import confusion_counts, confusion_figure, figure_image, misclassified_grid, save_figure


def test_confusion_matrix_counts_true_against_predicted():
    counts = confusion_counts(np.array([0, 1, 1, 2]), np.array([0, 2, 1, 2]), 3)
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])


def test_the_confusion_figure_is_saved_or_rendered_alike(tmp_path):
    counts = confusion_counts(np.arange(30) % 10, (np.arange(30) + np.arange(30) // 20) % 10, 10)
    save_figure(confusion_figure(counts, "test"), tmp_path / "confusion.png")
    saved = np.asarray(PIL.Image.open(tmp_path / "confusion.png").convert("RGB"))
    rendered = figure_image(confusion_figure(counts, "test"))
    assert rendered.dtype == np.uint8 and rendered.shape == saved.shape == (450, 500, 3)
    np.testing.assert_array_equal(rendered, saved)


def test_the_misclassified_grid_shows_the_wrong_images_and_names_them():
    images = np.stack([np.full((4, 4), value, np.uint8) for value in range(10)])
    labels, predictions = np.arange(10), np.array([0, 1, 7, 3, 4, 5, 6, 7, 2, 9])
    grid, shown = misclassified_grid(images, labels, predictions)
    assert shown == [{"index": 2, "label": 2, "predicted": 7}, {"index": 8, "label": 8, "predicted": 2}]
    assert grid.shape == (4 + 2 * 2, 8 * (4 + 2) + 2)  # one row of 8 columns, 2 pixels of padding
    assert grid[2, 2] == 2 and grid[2, 8] == 8 and grid[2, 14] == 255
    assert misclassified_grid(images, labels, predictions, limit=1)[1] == shown[:1]


def test_with_nothing_wrong_the_grid_is_one_blank_image():
    images = np.zeros((3, 5, 5), np.uint8)
    grid, shown = misclassified_grid(images, np.arange(3), np.arange(3))
    assert shown == [] and grid.shape == (5, 5) and np.all(grid == 255)
