"""Random transforms and the blog's random policy, drawing only from a given generator.

A random transform draws its parameters (the blog's ranges are the defaults)
and hands them to its deterministic counterpart; the drawn transform is what
gets recorded and replayed. Parameters are rounded to two decimals, as the blog
does, so records read cleanly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

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
from mlnb.rng import generator

#: the blog's five, in the order its script applies them
BLOG_TRANSFORMS = ("rotate", "scale", "intensity", "flip", "translate")
#: every transform the policy can draw (the rest of a chain, normalise/crop/resample, is fixed)
RANDOM_TRANSFORMS = (*BLOG_TRANSFORMS, "slice_shift")
STAGE = "augment"


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return round(float(rng.uniform(low, high)), 2)


def _check_range(name: str, values, positive: bool = False) -> tuple[float, float]:
    low, high = (float(v) for v in values)
    if low > high or (positive and low <= 0):
        raise ConfigError(f"{name} {[low, high]}: expected low <= high" + (" and low > 0" if positive else ""))
    return low, high


@dataclasses.dataclass(frozen=True)
class RandomRotate:
    degrees: float

    def draw(self, rng: np.random.Generator, depth: int) -> Rotate:
        return Rotate(_uniform(rng, -self.degrees, self.degrees))


@dataclasses.dataclass(frozen=True)
class RandomScale:
    factors: tuple[float, float]

    def draw(self, rng, depth) -> Scale:
        return Scale(_uniform(rng, *self.factors))


@dataclasses.dataclass(frozen=True)
class RandomIntensity:
    factors: tuple[float, float]

    def draw(self, rng, depth) -> Intensity:
        return Intensity(_uniform(rng, *self.factors))


@dataclasses.dataclass(frozen=True)
class RandomFlip:
    """The blog flips left-right on a coin toss (``np.random.choice(2)``), never up-down by default."""

    lr_probability: float = 0.5
    ud_probability: float = 0.0

    def draw(self, rng, depth) -> Flip:
        lr, ud = (bool(rng.random() < p) for p in (self.lr_probability, self.ud_probability))
        return Flip(lr=lr, ud=ud)


@dataclasses.dataclass(frozen=True)
class RandomTranslate:
    """Whole-pixel shifts in [-pixels, pixels] (the blog's ``randint(-5, 5)`` meant ±5)."""

    pixels: int

    def draw(self, rng, depth) -> Translate:
        rows, cols = (int(v) for v in rng.integers(-self.pixels, self.pixels + 1, size=2))
        return Translate(rows, cols)


@dataclasses.dataclass(frozen=True)
class RandomSliceShift:
    """Shift a ``fraction`` of the slices by whole pixels in [-pixels, pixels] (motion)."""

    pixels: int
    fraction: float

    def draw(self, rng, depth) -> SliceShift:
        moved = rng.choice(depth, size=int(round(depth * self.fraction)), replace=False)
        offsets = np.zeros((depth, 2), dtype=int)
        offsets[moved] = rng.integers(-self.pixels, self.pixels + 1, size=(len(moved), 2))
        return SliceShift(tuple((int(rows), int(cols)) for rows, cols in offsets))


@dataclasses.dataclass(frozen=True)
class RandomPolicy:
    """The blog's policy: a random number of distinct transforms, then crop square and resample.

    Chosen transforms run in the blog's fixed order (rotate, scale, intensity,
    flip, translate; slice shift last when enabled). Grey images and volumes are
    normalised to [0, 1] first (RGB is not, as in the blog), then cropped to a
    square around the segmentation and resampled to ``dims`` (if given). Build
    it from the stage's settings (``AugmentSettings.policy()``): the schema holds
    the defaults (the blog's values).
    """

    dims: tuple[int, ...] | None
    transforms: tuple[str, ...]
    min_transforms: int
    max_transforms: int
    rotation_degrees: float
    scale_range: tuple[float, float]
    intensity_range: tuple[float, float]
    translation_pixels: int
    crop_margin: int
    slice_shift_pixels: int
    slice_shift_fraction: float

    def __post_init__(self):
        unknown = set(self.transforms) - set(self.candidates())
        if unknown or not self.transforms or len(set(self.transforms)) != len(self.transforms):
            raise ConfigError(f"augment transforms {list(self.transforms)}: expected distinct names "
                              f"from {', '.join(self.candidates())}")
        if not 1 <= self.min_transforms <= self.max_transforms:
            raise ConfigError(f"augment min_transforms {self.min_transforms} / max_transforms "
                              f"{self.max_transforms}: expected 1 <= min <= max")
        _check_range("augment scale_range", self.scale_range, positive=True)
        _check_range("augment intensity_range", self.intensity_range, positive=True)
        if self.rotation_degrees < 0 or self.translation_pixels < 0 or self.crop_margin < 0:
            raise ConfigError("augment rotation_degrees, translation_pixels and crop_margin must be >= 0")
        if self.slice_shift_pixels < 0 or not 0 <= self.slice_shift_fraction <= 1:
            raise ConfigError("augment slice_shift_pixels must be >= 0 and slice_shift_fraction in [0, 1]")
        if self.dims is not None:
            Resample(tuple(self.dims))  # checks the dims

    def candidates(self) -> dict[str, object]:
        return {
            "rotate": RandomRotate(self.rotation_degrees),
            "scale": RandomScale(tuple(self.scale_range)),
            "intensity": RandomIntensity(tuple(self.intensity_range)),
            "flip": RandomFlip(),
            "translate": RandomTranslate(self.translation_pixels),
            "slice_shift": RandomSliceShift(self.slice_shift_pixels, self.slice_shift_fraction),
        }

    def draw_augmentations(self, rng: np.random.Generator, kind: str, depth: int) -> list[Transform]:
        """A random number of distinct random transforms, drawn and ordered like the blog's."""
        candidates = self.candidates()
        allowed = [name for name in candidates if name in self.transforms
                   and (name != "slice_shift" or kind == "volume")]
        if not allowed:
            raise ConfigError(f"augment transforms {list(self.transforms)}: none applies to a {kind} image")
        most = min(self.max_transforms, len(allowed))
        count = int(rng.integers(min(self.min_transforms, most), most + 1))
        chosen = set(rng.choice(allowed, size=count, replace=False).tolist())
        return [candidates[name].draw(rng, depth) for name in allowed if name in chosen]

    def draw(self, rng: np.random.Generator, kind: str, depth: int) -> list[Transform]:
        """The whole chain for one copy: normalise, random transforms, crop, resample."""
        chain: list[Transform] = [] if kind == "rgb" else [Normalise()]
        chain += self.draw_augmentations(rng, kind, depth)
        chain.append(CropToSegmentation(self.crop_margin))
        if self.dims is not None:
            chain.append(Resample(tuple(self.dims)))
        return chain


def copy_generator(seed: int, item: str, copy: int) -> np.random.Generator:
    """The generator for copy ``copy`` of item ``item``: independent of job order."""
    return generator(seed, STAGE, item, copy)
