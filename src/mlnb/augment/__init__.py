"""Augmentation of 2-D, RGB and 3-D images together with their segmentations.

The blog's transforms (translate, scale, rotate, flip, intensity, resample,
crop around the segmentation, slice shift) as small deterministic classes, a
random policy that draws them reproducibly, and two engines: ``fused`` (compose
everything, resample once) and ``sequential`` (the blog's scipy chain, as the
reference).

The names below load on first use (PEP 562): the planner imports
``mlnb.augment.memory`` for every augment job's memory request, and that needs
nibabel only, not the engines' OpenCV and SciPy.
"""

from __future__ import annotations

import importlib

from mlnb.errors import ConfigError

#: engine name -> (module, function)
MODES = {"fused": ("mlnb.augment.fused", "apply_fused"),
         "sequential": ("mlnb.augment.sequential", "apply_sequential")}

_TRANSFORMS = ("CropToSegmentation", "Flip", "Intensity", "Normalise", "Resample", "Rotate", "Scale",
               "SliceShift", "Transform", "Translate")
_LAZY = {"Augmented": "mlnb.augment.pair", "Pair": "mlnb.augment.pair",
         **{name: "mlnb.augment.transforms" for name in _TRANSFORMS}}


def augment(pair, transforms, mode: str = "fused", order: int = 3):
    """Apply ``transforms`` (in order) to ``pair`` with the ``fused`` or ``sequential`` engine."""
    if mode not in MODES:
        raise ConfigError(f"augment mode {mode!r}: expected one of {', '.join(MODES)}")
    if order not in range(6):
        raise ConfigError(f"augment order {order}: expected a spline order 0..5")
    module, function = MODES[mode]
    return getattr(importlib.import_module(module), function)(pair, list(transforms), order)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Augmented", *_TRANSFORMS, "MODES", "Pair", "augment"]
