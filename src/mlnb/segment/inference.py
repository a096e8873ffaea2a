"""A whole case predicted with sliding windows, taken back to its original grid and written as NIfTI.

Windows of the patch size step over the preprocessed case so that neighbours overlap by ``overlap`` of a
patch; each window's softmax is weighted by a Gaussian centred on it (sigma = 1/8 of the patch, as in
nnU-Net: a window's borders, which saw the least context, count the least) and the weighted sum is divided
by the summed weights. The label probabilities then go back through the preprocessing: resampled
(trilinear, voxel edges aligned, the inverse of the preprocessing's grid) to the crop box, arg-maxed, and
placed into the original volume, background outside the box. The NIfTI gets the input image's affine and
header, so it overlays the image in any viewer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mlnb.io import atomic_path
from mlnb.segment.preprocess import to_nifti


def gaussian_weights(size: Sequence[int], device: torch.device) -> torch.Tensor:
    """(S, R, C) weights: a Gaussian with sigma = size / 8 per axis, peak 1, no zeros."""
    axes = [torch.exp(-0.5 * ((torch.arange(length, device=device, dtype=torch.float32) - (length - 1) / 2)
                             / (length / 8)) ** 2) for length in size]
    weights = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return weights.clamp(min=float(weights[weights > 0].min()))


def window_starts(length: int, size: int, overlap: float) -> list[int]:
    """Corners along one axis: evenly spread from 0 to length - size, at most (1 - overlap) x size apart."""
    if length <= size:
        return [0]
    count = math.ceil((length - size) / (size * (1 - overlap))) + 1
    return sorted({int(round(value)) for value in np.linspace(0, length - size, count)})


@torch.no_grad()
def sliding_window(predict: Callable[[torch.Tensor], torch.Tensor], image: torch.Tensor, patch: Sequence[int],
                   overlap: float, labels: int, batch: int) -> torch.Tensor:
    """(labels, S, R, C) probabilities of an (S, R, C) image on its device; ``predict`` maps (B, *patch)
    windows to (B, labels, *patch) logits."""
    shape = image.shape
    widths = [(extra // 2, extra - extra // 2) for extra in (max(0, want - have) for want, have in zip(patch, shape,
                                                                                                       strict=True))]
    padded = F.pad(image, [value for pair in reversed(widths) for value in pair], value=float(image.min()))
    weights = gaussian_weights(patch, image.device)
    sums = torch.zeros((labels, *padded.shape), device=image.device)
    counts = torch.zeros(padded.shape, device=image.device)
    corners = [(s, r, c) for s in window_starts(padded.shape[0], patch[0], overlap)
               for r in window_starts(padded.shape[1], patch[1], overlap)
               for c in window_starts(padded.shape[2], patch[2], overlap)]
    for first in range(0, len(corners), batch):
        group = corners[first:first + batch]
        windows = [tuple(slice(start, start + size) for start, size in zip(corner, patch, strict=True))
                   for corner in group]
        logits = predict(torch.stack([padded[window] for window in windows]))
        probabilities = logits.float().softmax(dim=1) * weights
        for window, values in zip(windows, probabilities, strict=True):
            sums[(slice(None), *window)] += values
            counts[window] += weights
    inside = tuple(slice(low, low + size) for (low, _), size in zip(widths, shape, strict=True))
    return (sums / counts)[(slice(None), *inside)]


def to_original(probabilities: torch.Tensor, case: dict[str, Any]) -> np.ndarray:
    """The (slices, rows, cols) uint8 label map on the case's original grid (a pack index entry)."""
    box = case["crop"]
    size = [stop - start for start, stop in box]
    resampled = F.interpolate(probabilities[None], size=size, mode="trilinear", align_corners=False)[0]
    labels = np.zeros(case["original_shape"], np.uint8)
    labels[tuple(slice(start, stop) for start, stop in box)] = resampled.argmax(dim=0).to(torch.uint8).cpu().numpy()
    return labels


def write_prediction(labels: np.ndarray, image_path: str | Path, out: Path) -> None:
    """``labels`` (slices, rows, cols) as a NIfTI label map with the affine and header of ``image_path``."""
    import nibabel as nib

    image = nib.load(image_path)
    header = image.header.copy()
    header["cal_min"], header["cal_max"] = 0, int(labels.max())
    header["scl_slope"], header["scl_inter"] = 1, 0
    prediction = type(image)(to_nifti(labels), image.affine, header=header)
    prediction.set_data_dtype(np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        prediction.to_filename(tmp)
