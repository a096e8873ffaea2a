"""Figures of a classifier's test results, as RGB arrays to log (drawn only when a run is tracked)."""

from __future__ import annotations

import numpy as np


def _rendered(figure) -> np.ndarray:
    import matplotlib.pyplot as plt

    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image


def confusion_figure(confusion: np.ndarray, title: str) -> np.ndarray:
    """The confusion matrix (rows: true class, columns: predicted) with its counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = len(confusion)
    figure, axes = plt.subplots(figsize=(6, 5.5), dpi=100)
    axes.imshow(np.log1p(confusion), cmap="Blues")
    threshold = np.log1p(confusion).max() / 2
    for true in range(classes):
        for predicted in range(classes):
            count = int(confusion[true, predicted])
            axes.text(predicted, true, str(count), ha="center", va="center", fontsize=7,
                      color="white" if np.log1p(count) > threshold else "black")
    axes.set(xticks=range(classes), yticks=range(classes), xlabel="predicted", ylabel="true", title=title)
    figure.tight_layout()
    return _rendered(figure)


def misclassified_figure(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                         title: str, limit: int = 64) -> np.ndarray | None:
    """The first ``limit`` misclassified images (uint8 N x H x W), each titled true -> predicted; None if none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(labels != predictions)[:limit]
    if len(wrong) == 0:
        return None
    columns = 8
    rows = -(-len(wrong) // columns)
    figure, grid = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.25 + 0.4), dpi=100, squeeze=False)
    for cell, axes in enumerate(grid.flat):
        axes.axis("off")
        if cell < len(wrong):
            index = wrong[cell]
            axes.imshow(images[index], cmap="gray", vmin=0, vmax=255)
            axes.set_title(f"{labels[index]} -> {predictions[index]}", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _rendered(figure)
