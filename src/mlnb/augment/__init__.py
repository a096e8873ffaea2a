"""Augmentation of 2-D, RGB and 3-D images together with their segmentations.

The blog's transforms (translate, scale, rotate, flip, intensity, resample,
crop around the segmentation, slice shift) as small deterministic classes, a
random policy that draws them reproducibly, and two engines: ``fused`` (compose
everything, resample once) and ``sequential`` (the blog's scipy chain, as the
reference).
"""

from __future__ import annotations

from mlnb.augment.fused import apply_fused
from mlnb.augment.pair import Augmented, Pair
from mlnb.augment.sequential import apply_sequential
from mlnb.augment.transforms import (
    CropToSegmentation,
    Flip,
    Intensity,
    Normalise,
    Resample,
    Rotate,
    Scale,
    SliceShift,
    Transform,
    Translate,
)
from mlnb.errors import ConfigError

MODES = {"fused": apply_fused, "sequential": apply_sequential}


def augment(pair: Pair, transforms, mode: str = "fused", order: int = 3) -> Augmented:
    """Apply ``transforms`` (in order) to ``pair`` with the ``fused`` or ``sequential`` engine."""
    if mode not in MODES:
        raise ConfigError(f"augment mode {mode!r}: expected one of {', '.join(MODES)}")
    if order not in range(6):
        raise ConfigError(f"augment order {order}: expected a spline order 0..5")
    return MODES[mode](pair, list(transforms), order)


__all__ = [
    "Augmented", "CropToSegmentation", "Flip", "Intensity", "MODES", "Normalise", "Pair", "Resample",
    "Rotate", "Scale", "SliceShift", "Transform", "Translate", "augment",
]
