"""Per-case Dice and HD95 of a label map against the truth, defined for empty masks too.

HD95 is the larger of the two directed 95th percentiles of the distances (in mm, honouring the voxel
spacing) from each surface voxel of one mask to the nearest surface voxel of the other (as MONAI's and
medpy's ``hd95``); surface voxels are those with a face-neighbour outside the mask.

Conventions when a mask is empty (no NaN anywhere):

* Dice: 1 when prediction and truth are both empty, 0 when only one is;
* HD95: 0 when both are empty; the volume's diagonal in mm (the largest distance it holds) when only one is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    total = int(predicted.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(predicted, truth).sum()) / total


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face-neighbour outside it (or outside the array)."""
    return mask & ~ndimage.binary_erosion(mask, ndimage.generate_binary_structure(mask.ndim, 1), border_value=0)


def diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    return float(np.sqrt(np.sum((np.asarray(shape) * np.asarray(spacing, dtype=float)) ** 2)))


def hd95(predicted: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric surface distance in mm (see the module's conventions for empty masks)."""
    filled = predicted.any(), truth.any()
    if not any(filled):
        return 0.0
    if not all(filled):
        return diagonal(truth.shape, spacing)
    # nearest surface voxels lie inside the two masks' common bounding box: measure there (one voxel of margin)
    both = np.argwhere(predicted | truth)
    window = tuple(slice(max(low - 1, 0), high + 2) for low, high in zip(both.min(0), both.max(0), strict=True))
    borders = [surface(mask[window].astype(bool)) for mask in (predicted, truth)]
    percentiles = []
    for source, target in (borders, borders[::-1]):
        distances = ndimage.distance_transform_edt(~target, sampling=spacing)[source]
        percentiles.append(float(np.percentile(distances, 95)))
    return max(percentiles)


def case_metrics(predicted: np.ndarray, truth: np.ndarray, spacing: Sequence[float],
                 labels: Sequence[int]) -> dict:
    """Dice and HD95 of each foreground label in ``labels`` and their means."""
    per_label = {}
    for label in labels:
        if label == 0:
            continue
        mine, theirs = predicted == label, truth == label
        per_label[str(label)] = {"dice": dice(mine, theirs), "hd95": hd95(mine, theirs, spacing)}
    return {"dice": float(np.mean([value["dice"] for value in per_label.values()])),
            "hd95": float(np.mean([value["hd95"] for value in per_label.values()])),
            "labels": per_label}
