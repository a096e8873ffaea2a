"""Deterministic transforms of an image and its segmentation, one job each.

Every transform can be applied two ways:

* ``fuse(plan)`` adds its geometry (a 3x3 in-plane matrix, per slice for
  ``SliceShift``) or its value map to a :class:`~mlnb.augment.fused.Plan`, which
  resamples once at the end;
* ``reference(image, codes, order, trace)`` does what the blog's function did, on
  the blog's ``(H, W, depth)`` layout with its own ``scipy.ndimage`` call — the
  sequential reference that interpolates again at every step.

Images are resampled with the chosen spline order, segmentations (as label
codes, see :class:`~mlnb.augment.pair.LabelCodes`) with nearest neighbour. Gaps
at the border repeat the edge in images (the blog's ``mode='nearest'``) and are
background (label 0) in segmentations: repeating a label at the edge would smear
it over the gap. Value transforms never touch the segmentation.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from mlnb.augment import affine
from mlnb.augment.pair import Trace
from mlnb.errors import DataError

Codes = np.ndarray | None


class Transform(ABC):
    """Base of all transforms: a frozen dataclass with a JSON name."""

    name: ClassVar[str]
    registry: ClassVar[dict[str, type[Transform]]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Transform.registry[cls.name] = cls

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **_jsonable(dataclasses.asdict(self))}

    @staticmethod
    def from_json(entry: Mapping[str, Any]) -> Transform:
        params = dict(entry)
        name = params.pop("name", None)
        if name not in Transform.registry:
            raise DataError(f"unknown transform {name!r} (known: {', '.join(sorted(Transform.registry))})")
        cls = Transform.registry[name]
        try:
            return cls(**{key: _frozen(value) for key, value in params.items()})
        except TypeError as error:
            raise DataError(f"transform {name!r}: bad parameters {params} ({error})") from error

    def summary(self) -> str:
        """A short description, e.g. ``rotate(degrees=3.5)``."""
        params = ", ".join(f"{key}={value}" for key, value in dataclasses.asdict(self).items())
        return f"{self.name}({params})"

    @abstractmethod
    def fuse(self, plan) -> None:
        """Add this transform to a fused plan."""

    @abstractmethod
    def reference(self, image: np.ndarray, codes: Codes, order: int, trace: Trace) -> tuple[np.ndarray, Codes]:
        """The blog's way: resample ``image`` (H, W, depth) and ``codes`` now."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


def _frozen(value: Any) -> Any:
    """JSON lists back to the tuples the frozen dataclasses hold."""
    return tuple(_frozen(item) for item in value) if isinstance(value, list) else value


def _each(codes: Codes, function) -> Codes:
    return None if codes is None else function(codes)


#: scipy.ndimage border modes: images repeat their edge, segmentations are padded with background
IMAGE_BORDER = {"mode": "nearest"}
LABEL_BORDER = {"mode": "grid-constant", "cval": 0}


# --------------------------------------------------------------------------- spatial


@dataclasses.dataclass(frozen=True)
class Translate(Transform):
    """Shift by (rows, cols) pixels; positive moves content down/right (``translateit``)."""

    rows: float = 0.0
    cols: float = 0.0
    name: ClassVar[str] = "translate"

    def fuse(self, plan) -> None:
        plan.then(affine.translation(self.rows, self.cols))

    def reference(self, image, codes, order, trace):
        def shift(array, spline_order, border):
            return ndimage.shift(array, (self.rows, self.cols, 0), order=spline_order, **border)

        return shift(image, order, IMAGE_BORDER), _each(codes, lambda c: shift(c, 0, LABEL_BORDER))


@dataclasses.dataclass(frozen=True)
class Rotate(Transform):
    """Rotate every slice about the plane's centre by ``degrees`` (``rotateit``)."""

    degrees: float = 0.0
    name: ClassVar[str] = "rotate"

    def fuse(self, plan) -> None:
        plan.then(affine.rotation(self.degrees, plan.plane))

    def reference(self, image, codes, order, trace):
        def rotate(array, spline_order, border):
            return ndimage.rotate(array, self.degrees, axes=(1, 0), reshape=False, order=spline_order, **border)

        return rotate(image, order, IMAGE_BORDER), _each(codes, lambda c: rotate(c, 0, LABEL_BORDER))


@dataclasses.dataclass(frozen=True)
class Scale(Transform):
    """Zoom about the plane's centre, keeping the shape (``scaleit``; > 1 zooms in)."""

    factor: float = 1.0
    name: ClassVar[str] = "scale"

    def __post_init__(self):
        if not self.factor > 0:
            raise DataError(f"scale factor must be positive, got {self.factor}")

    def fuse(self, plan) -> None:
        plan.then(affine.scaling(self.factor, plan.plane))

    def reference(self, image, codes, order, trace):
        return self._scale(image, order, IMAGE_BORDER), _each(codes, lambda c: self._scale(c, 0, LABEL_BORDER))

    def _scale(self, array: np.ndarray, order: int, border: dict) -> np.ndarray:
        """The blog's ``scaleit`` as it was meant: zoom only the part that stays in view, centred.

        (The post crops an off-centre region when zooming in, and pads with zeros
        when zooming out; here the zoom is centred and gaps are filled like every
        other transform's: the image's edge repeated, background in segmentations.)
        """
        if self.factor == 1.0:
            return array
        plane = array.shape[:2]
        if self.factor > 1.0:
            kept = [int(round(size / self.factor)) for size in plane]
            start = [(size - keep) // 2 for size, keep in zip(plane, kept, strict=True)]
            array = array[start[0]:start[0] + kept[0], start[1]:start[1] + kept[1]]
        zoomed = ndimage.zoom(array, (self.factor, self.factor, 1.0), order=order, mode="nearest")
        return _fit_centred(zoomed, plane, border)


def _shift_along(axis: int, pixels: int) -> np.ndarray:
    return affine.translation(*(pixels if a == axis else 0 for a in range(2)))


def _fit_centred(array: np.ndarray, plane: tuple[int, int], border: dict) -> np.ndarray:
    """Crop or pad (edge repeated, or zeros for ``LABEL_BORDER``) the first two axes, centred, to ``plane``."""
    for axis, size in enumerate(plane):
        extra = array.shape[axis] - size
        if extra > 0:
            array = np.take(array, np.arange(extra // 2, extra // 2 + size), axis=axis)
        elif extra < 0:
            widths = [(0, 0)] * array.ndim
            widths[axis] = (-extra // 2, -extra - (-extra // 2))
            array = np.pad(array, widths, mode="edge") if border is IMAGE_BORDER else np.pad(array, widths)
    return array


@dataclasses.dataclass(frozen=True)
class Flip(Transform):
    """Mirror left-right (``np.fliplr``) and/or up-down (``np.flipud``) (``flipit``)."""

    lr: bool = False
    ud: bool = False
    name: ClassVar[str] = "flip"

    def fuse(self, plan) -> None:
        plan.then(affine.flip(plan.plane, rows=self.ud, cols=self.lr))

    def reference(self, image, codes, order, trace):
        axes = tuple(axis for axis, wanted in ((0, self.ud), (1, self.lr)) if wanted)
        return np.flip(image, axes), _each(codes, lambda c: np.flip(c, axes))


@dataclasses.dataclass(frozen=True)
class SliceShift(Transform):
    """Shift each slice of a volume by its own (rows, cols): simulated motion between slices."""

    offsets: tuple[tuple[int, int], ...] = ()
    name: ClassVar[str] = "slice_shift"

    def summary(self) -> str:
        moved = sum(1 for offset in self.offsets if any(offset))
        return f"{self.name}({moved} of {len(self.offsets)} slices)"

    def _check(self, kind: str, depth: int, source: str) -> None:
        if kind != "volume":
            raise DataError(f"{source}: slice_shift needs a 3-D volume, not a {kind} image")
        if len(self.offsets) != depth:
            raise DataError(f"{source}: slice_shift has {len(self.offsets)} offsets for {depth} slices")

    def fuse(self, plan) -> None:
        self._check(plan.trace.kind, plan.depth, plan.trace.source)
        plan.then(np.stack([affine.translation(rows, cols) for rows, cols in self.offsets]))

    def reference(self, image, codes, order, trace):
        self._check(trace.kind, image.shape[2], trace.source)
        image = image.copy()
        codes = None if codes is None else codes.copy()
        for index, (rows, cols) in enumerate(self.offsets):
            if rows or cols:
                image[:, :, index] = ndimage.shift(image[:, :, index], (rows, cols), order=order, **IMAGE_BORDER)
                if codes is not None:
                    codes[:, :, index] = ndimage.shift(codes[:, :, index], (rows, cols), order=0, **LABEL_BORDER)
        return image, codes


@dataclasses.dataclass(frozen=True)
class CropToSegmentation(Transform):
    """Crop a square (side = the shorter axis) that keeps the segmentation in view (``cropit``).

    The window slides along the longer axis so the segmentation, plus ``margin``
    pixels, stays inside; if it cannot fit the window is centred on it. With no
    segmentation, or an empty one (which is noted), it is a centre crop.
    """

    margin: int = 5
    name: ClassVar[str] = "crop_to_segmentation"

    def fuse(self, plan) -> None:
        axis, start, side = self.window(plan.plane, plan.segmentation_mask, plan.trace)
        plan.regrid(_shift_along(axis, -start), (side, side))

    def reference(self, image, codes, order, trace):
        axis, start, side = self.window(image.shape[:2], lambda: None if codes is None else codes != 0, trace)

        def crop(array):
            return np.take(array, np.arange(start, start + side), axis=axis)

        trace.regrid(_shift_along(axis, -start), image.shape[2], image.shape[2])
        return crop(image), _each(codes, crop)

    def window(self, plane, foreground: Callable[[], np.ndarray | None], trace: Trace) -> tuple[int, int, int]:
        """(axis, start, side) of the crop.

        ``foreground()`` gives the segmentation's foreground in (H, W, depth)
        layout, or None; it is only evaluated when the plane is not square already.
        """
        side = min(plane)
        axis = 1 - int(np.argmin(plane))
        length = plane[axis]
        start = length // 2 - side // 2
        mask = foreground() if length != side else None
        if mask is not None:
            hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
            if hits.size == 0:
                trace.note("empty segmentation: centre crop instead of a crop around it")
            else:
                low, high = hits[0] - self.margin, hits[-1] + self.margin
                if high - low + 1 >= side:
                    start = (hits[0] + hits[-1] + 1) // 2 - side // 2
                else:
                    start = min(max(start, high - side + 1), low)
        return axis, int(np.clip(start, 0, length - side)), side


@dataclasses.dataclass(frozen=True)
class Resample(Transform):
    """Resample to ``dims``: (rows, cols) in-plane, and slices too when a volume gets three entries.

    Pixel centres at the corners stay put (``scipy.ndimage.zoom``'s convention).
    Intensities are not rescaled here (see :class:`Normalise`).
    """

    dims: tuple[int, ...] = ()
    name: ClassVar[str] = "resample"

    def __post_init__(self):
        if len(self.dims) not in (2, 3) or min(self.dims) < 1:
            raise DataError(f"resample dims must be 2 or 3 positive sizes, got {list(self.dims)}")

    def _slices(self, kind: str, depth: int, source: str) -> int:
        if len(self.dims) == 3 and kind != "volume":
            raise DataError(f"{source}: dims {list(self.dims)} has a slice count but this is a 2-D "
                            f"{kind} image; give two dims")
        return self.dims[2] if len(self.dims) == 3 else depth

    def fuse(self, plan) -> None:
        slices = self._slices(plan.trace.kind, plan.slices, plan.trace.source)
        plan.regrid(affine.resize(plan.plane, self.dims[:2]), self.dims[:2], slices)

    def reference(self, image, codes, order, trace):
        slices = self._slices(trace.kind, image.shape[2], trace.source)
        factors = [out / size for out, size in zip((*self.dims[:2], slices), image.shape, strict=True)]
        trace.regrid(affine.resize(image.shape[:2], self.dims[:2]), image.shape[2], slices)

        def zoom(array, spline_order):
            return ndimage.zoom(array, factors, order=spline_order, mode="nearest")

        return zoom(image, order), _each(codes, lambda c: zoom(c, 0))


# --------------------------------------------------------------------------- values


class ValueTransform(Transform):
    """A change of intensities ``v -> scale * v + offset``; the segmentation is left alone."""

    @abstractmethod
    def value_map(self, low: float, high: float) -> tuple[float, float]:
        """(scale, offset) for an image whose values span [low, high]."""

    def fuse(self, plan) -> None:
        plan.add_values(self)

    def reference(self, image, codes, order, trace):
        scale, offset = self.value_map(float(image.min()), float(image.max()))
        return (image * np.float32(scale) + np.float32(offset)).astype(np.float32), codes


@dataclasses.dataclass(frozen=True)
class Intensity(ValueTransform):
    """Multiply intensities by ``factor`` (``intensifyit``): < 1 dims, > 1 brightens."""

    factor: float = 1.0
    name: ClassVar[str] = "intensity"

    def value_map(self, low, high):
        return self.factor, 0.0


@dataclasses.dataclass(frozen=True)
class Normalise(ValueTransform):
    """Rescale intensities to [0, 1] by the image's minimum and maximum (a constant image -> 0).

    The blog rescales inside ``resampleit``, after the intensity change, which
    silently undoes it; the policy normalises first instead, so the intensity
    factor survives.
    """

    name: ClassVar[str] = "normalise"

    def value_map(self, low, high):
        if high > low:
            return 1.0 / (high - low), -low / (high - low)
        return 1.0, -low
