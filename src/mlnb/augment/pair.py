"""An image with its optional segmentation, checked once on the way in.

Layouts (the blog's): a grey image is ``(H, W)``, an RGB image ``(H, W, 3)``, a
volume ``(H, W, D)`` with the slices last. Every transform acts in the
``(H, W)`` plane; the third axis holds colour channels or slices. The
segmentation has the image's spatial shape: ``(H, W)`` for grey and RGB images,
``(H, W, D)`` for volumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from mlnb.augment import affine, layout
from mlnb.errors import DataError

log = logging.getLogger(__name__)

KINDS = ("grey", "rgb", "volume")


def infer_kind(image: np.ndarray) -> str:
    """The blog's rule: a third axis of 3 is colour, any other length holds slices."""
    if image.ndim == 2:
        return "grey"
    return "rgb" if image.shape[-1] == 3 else "volume"


@dataclass
class Pair:
    """An image and its segmentation (or None); ``source``/``seg_source`` name them in errors."""

    image: np.ndarray
    seg: np.ndarray | None = None
    kind: str | None = None
    source: str = "image"
    seg_source: str = "segmentation"

    def __post_init__(self) -> None:
        self.image = np.asanyarray(self.image)
        self._check_image()
        self.kind = self.kind or infer_kind(self.image)
        self._check_kind()
        if self.seg is not None:
            self.seg = np.asanyarray(self.seg)
            self._check_seg()

    def _check_image(self) -> None:
        image = self.image
        if image.ndim not in (2, 3):
            raise DataError(f"{self.source}: a {image.ndim}-D image of shape {image.shape}; "
                            "augment one 2-D image or 3-D volume at a time (split 4-D series first)")
        if image.size == 0:
            raise DataError(f"{self.source}: the image is empty (shape {image.shape})")
        if image.dtype.kind not in "buif":
            raise DataError(f"{self.source}: unsupported image dtype {image.dtype}")
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            bad = int(np.count_nonzero(~np.isfinite(image)))
            raise DataError(f"{self.source}: the image holds {bad} NaN or infinite values")

    def _check_kind(self) -> None:
        if self.kind not in KINDS:
            raise DataError(f"{self.source}: unknown image kind {self.kind!r} (one of {', '.join(KINDS)})")
        expected_ndim = 2 if self.kind == "grey" else 3
        if self.image.ndim != expected_ndim or (self.kind == "rgb" and self.image.shape[-1] != 3):
            raise DataError(f"{self.source}: shape {self.image.shape} is not a {self.kind} image")

    def _check_seg(self) -> None:
        seg = self.seg
        if seg.shape != self.spatial_shape:
            raise DataError(f"{self.seg_source}: segmentation shape {seg.shape} differs from the shape "
                            f"{self.spatial_shape} of its image {self.source}")
        if seg.dtype.kind in "bui":
            return
        if seg.dtype.kind != "f":
            raise DataError(f"{self.seg_source}: unsupported segmentation dtype {seg.dtype}")
        fractional = ~np.isfinite(seg) | (seg != np.round(seg))
        if fractional.any():
            example = seg[fractional].flat[0].item()
            raise DataError(f"{self.seg_source}: the segmentation is not integer-valued "
                            f"({int(fractional.sum())} values like {example!r}; dtype {seg.dtype}); "
                            "it must hold class labels")

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.image.shape[:2] if self.kind == "rgb" else self.image.shape

    @property
    def plane(self) -> tuple[int, int]:
        return self.image.shape[:2]

    @property
    def depth(self) -> int:
        """Slices (volume) or channels (RGB) along the third axis; 1 for grey."""
        return 1 if self.image.ndim == 2 else self.image.shape[2]

    def image_slices(self) -> np.ndarray:
        """The image as (depth, H, W), one contiguous plane per slice/channel, in its own dtype or, for
        types wider than 4 bytes, in float32 (never a bigger copy than the float32 image)."""
        image = self.image if self.image.dtype.itemsize <= 4 else self.image.astype(np.float32)
        return layout.planes(image[:, :, None] if image.ndim == 2 else image)

    def value_range(self) -> tuple[float, float]:
        """The least and greatest value of the image in float32 (the cast keeps the order: a cast of the ends)."""
        ends = np.array([self.image.min(), self.image.max()], self.image.dtype).astype(np.float32)
        return float(ends[0]), float(ends[1])

    def image_planes(self) -> np.ndarray:
        """A float32 copy of the image as (H, W, depth), the blog's layout."""
        planes = self.image[:, :, None] if self.image.ndim == 2 else self.image
        return np.array(planes, dtype=np.float32)

    def label_codes(self) -> LabelCodes | None:
        return None if self.seg is None else LabelCodes.encode(self.seg, self.kind)


@dataclass
class LabelCodes:
    """Labels as small unsigned codes that OpenCV and scipy copy exactly under nearest sampling.

    One- and two-byte labels keep their bytes (viewed as unsigned); wider or float
    labels are numbered through their distinct values. Either way code 0 means
    label 0 (the background), and decoding gives back exactly the input's values
    in the input's dtype. Codes are (H, W, depth), C-contiguous (depth 1 for 2-D images).
    """

    codes: np.ndarray  # (H, W, depth) uint8 or uint16
    dtype: np.dtype
    values: np.ndarray | None  # code -> label; None: the codes reinterpret the labels' bytes

    @classmethod
    def encode(cls, seg: np.ndarray, kind: str) -> LabelCodes:
        planes = layout.c_order_copy(seg if kind == "volume" else seg[:, :, None])
        if seg.dtype.kind in "bui" and seg.dtype.itemsize <= 2:
            return cls(planes.view(np.uint8 if seg.dtype.itemsize == 1 else np.uint16), seg.dtype, None)
        distinct, inverse = np.unique(planes, return_inverse=True)
        foreground = distinct != 0
        values = np.concatenate([np.zeros(1, seg.dtype), distinct[foreground]])
        if len(values) > np.iinfo(np.uint16).max + 1:
            raise DataError(f"segmentation has {len(values)} distinct labels; at most 65536 are supported")
        code_of = np.zeros(len(distinct), np.uint8 if len(values) <= 256 else np.uint16)
        code_of[foreground] = np.arange(1, len(values))
        return cls(code_of[inverse.reshape(planes.shape)], seg.dtype, values)

    def decode(self, codes: np.ndarray, kind: str) -> np.ndarray:
        """(h, w, depth) codes back to labels in the segmentation's layout and dtype."""
        codes = np.ascontiguousarray(codes)
        labels = codes.view(self.dtype) if self.values is None else self.values[codes]
        return labels if kind == "volume" else labels[:, :, 0]


@dataclass
class Augmented:
    """The result of augmenting a Pair.

    ``grid`` maps output voxel indices (row, col, slice, 1) to input voxel indices
    through the grid changes only (crop, resample), so a NIfTI affine follows the
    new field of view and voxel size while rotations and flips stay visible.
    """

    image: np.ndarray  # float32, the input's layout
    seg: np.ndarray | None
    kind: str
    grid: np.ndarray = field(default_factory=lambda: np.eye(4))
    notes: list[str] = field(default_factory=list)


@dataclass
class Trace:
    """What a chain did besides moving pixels: grid changes (for the NIfTI affine) and notes."""

    source: str
    kind: str
    grid: np.ndarray = field(default_factory=lambda: np.eye(4))
    notes: list[str] = field(default_factory=list)

    def regrid(self, forward: np.ndarray, slices_in: int, slices_out: int) -> None:
        """Record a change of grid: ``forward`` maps the old plane onto the new one."""
        pull = np.linalg.inv(forward)
        through_plane = np.linalg.inv(affine.resize((slices_in,), (slices_out,)))
        step = np.eye(4)
        step[:2, :2], step[:2, 3] = pull[:2, :2], pull[:2, 2]
        step[2, 2], step[2, 3] = through_plane[0, 0], through_plane[0, 1]
        self.grid = self.grid @ step

    def note(self, message: str) -> None:
        log.warning("%s: %s", self.source, message)
        self.notes.append(message)

    def result(self, image: np.ndarray, seg: np.ndarray | None) -> Augmented:
        return Augmented(image, seg, self.kind, self.grid, self.notes)
