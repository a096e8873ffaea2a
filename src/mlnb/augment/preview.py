"""The blog's 2x2 preview: original image and segmentation on top, augmented below."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlnb.augment.pair import Augmented, Pair
from mlnb.io import atomic_path
from mlnb.preview import to_uint8


def _middle(array: np.ndarray, kind: str, is_seg: bool = False) -> np.ndarray:
    """The plane to show: the middle slice of a volume, the image itself otherwise."""
    if kind == "volume":
        return array[:, :, array.shape[2] // 2]
    return to_uint8(array) if kind == "rgb" and not is_seg else array


def _panel(axes, picture: np.ndarray | None, title: str, label_max: int | None = None) -> None:
    axes.set_axis_off()
    axes.set_title(title, fontsize=9)
    if picture is None:
        axes.text(0.5, 0.5, "no segmentation", ha="center", va="center", transform=axes.transAxes)
    elif label_max is not None:
        axes.imshow(picture, cmap="nipy_spectral", vmin=0, vmax=label_max, interpolation="nearest")
    else:  # a robust grey range, so a little interpolation overshoot does not wash out the background
        low, high = np.percentile(picture, (0.5, 99.5)) if picture.ndim == 2 else (None, None)
        axes.imshow(picture, cmap="gray", vmin=low, vmax=high, interpolation="nearest")


def write_preview(path: Path, original: Pair, augmented: Augmented, caption: str) -> None:
    """Render the 2x2 preview to ``path`` (PNG, Agg backend, no timestamps: same input, same bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 6.8), dpi=100)
    FigureCanvasAgg(figure)
    grid = figure.subplots(2, 2)
    segs = [s for s in (original.seg, augmented.seg) if s is not None]
    label_max = max([int(np.max(s)) for s in segs] + [1])
    _panel(grid[0, 0], _middle(original.image, original.kind), f"original {original.image.shape}")
    _panel(grid[0, 1], None if original.seg is None else _middle(original.seg, original.kind, True),
           "original segmentation", label_max)
    _panel(grid[1, 0], _middle(augmented.image, augmented.kind), f"augmented {augmented.image.shape}")
    _panel(grid[1, 1], None if augmented.seg is None else _middle(augmented.seg, augmented.kind, True),
           "augmented segmentation", label_max)
    figure.suptitle(caption, fontsize=8, wrap=True)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", metadata={"Software": None})
