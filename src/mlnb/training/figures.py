"""A classifier's test results, drawn the same way for every stage: the confusion matrix (its counts and its
figure) and a grid of the misclassified images.

The MLP writes its figures as PNG files (:func:`save_figure`); the CNN logs them to MLflow as RGB arrays
(:func:`figure_image`), drawing them only when its run is tracked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlnb.io import atomic_path
from mlnb.preview import image_grid


def confusion_counts(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(counts, (labels.astype(np.int64), predictions.astype(np.int64)), 1)
    return counts


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_figure(counts: np.ndarray, title: str):
    """The confusion matrix (rows: true class, columns: predicted) with its counts, as a matplotlib figure."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 4.5), dpi=100)
    image = axes.imshow(counts, cmap="Blues")
    for (true, predicted), count in np.ndenumerate(counts):
        axes.text(predicted, true, str(count), ha="center", va="center", fontsize=6,
                  color="white" if count > counts.max() / 2 else "black")
    axes.set(xlabel="predicted", ylabel="true", xticks=range(len(counts)), yticks=range(len(counts)), title=title)
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    return figure


def save_figure(figure, path: Path) -> None:
    """The figure as a PNG file, written atomically; the figure is closed."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp)
    _pyplot().close(figure)


def figure_image(figure) -> np.ndarray:
    """The figure as an H x W x 3 uint8 array (to log); the figure is closed."""
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    _pyplot().close(figure)
    return image


def misclassified_grid(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                       limit: int = 64) -> tuple[np.ndarray, list[dict[str, int]]]:
    """The first ``limit`` misclassified images (uint8 N x H x W) as one grid of 8 columns (a blank image when
    none is wrong), and which they are (index, label, predicted)."""
    wrong = np.flatnonzero(labels != predictions)[:limit]
    if wrong.size == 0:
        return np.full(images.shape[1:], 255, np.uint8), []
    grid = image_grid(images[wrong], columns=8)
    return grid, [{"index": int(i), "label": int(labels[i]), "predicted": int(predictions[i])} for i in wrong]
