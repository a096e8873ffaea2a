"""Overlay previews: one slice of a case, its truth and predictions, labels in colour over the image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def busiest_slice(labels: np.ndarray) -> int:
    """The slice (axis 0) with the most foreground voxels; the middle one when there are none."""
    counts = (labels > 0).reshape(len(labels), -1).sum(axis=1)
    return int(counts.argmax()) if counts.any() else len(labels) // 2


def overlay_panels(image: np.ndarray, label_maps: Sequence[np.ndarray], titles: Sequence[str],
                   caption: str = "") -> np.ndarray:
    """An RGB uint8 picture: slice :func:`busiest_slice` (of the first label map) of ``image`` alone, then
    under each label map (all (slices, rows, cols))."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    index = busiest_slice(label_maps[0])
    plane = image[index]
    low, high = np.percentile(plane, (1, 99))
    highest = max(1, max(int(labels.max()) for labels in label_maps))
    figure, axes = plt.subplots(1, len(label_maps) + 1, figsize=(2.6 * (len(label_maps) + 1), 3.0), dpi=100)
    for axis, labels, title in zip(axes, [None, *label_maps], ["image", *titles], strict=True):
        axis.imshow(plane, cmap="gray", vmin=low, vmax=high)
        if labels is not None:
            shown = np.ma.masked_equal(labels[index], 0)
            axis.imshow(shown, cmap="autumn", vmin=1, vmax=highest, alpha=0.5, interpolation="nearest")
        axis.set_title(title, fontsize=9)
        axis.axis("off")
    figure.suptitle(f"{caption} (slice {index})".strip(), fontsize=9)
    figure.tight_layout()
    figure.canvas.draw()
    picture = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return picture
