"""One resampling per augmentation: compose every transform, then resample once.

Every blog transform acts in-plane, so the whole chain is one 2-D affine map per
slice (the same for all slices unless ``SliceShift`` is in it), applied with
``cv2.warpAffine`` slice by slice: images with the chosen order (0 nearest,
1 linear, 3 cubic; other spline orders fall back to ``scipy.ndimage``),
segmentations with nearest neighbour (the image's edge repeats into gaps at
the border, the segmentation's background fills them). Crop-to-segmentation and in-plane
resampling are part of that one map. Changing the number of slices is a
separate 1-D interpolation along the slice axis afterwards (the same spline
zoom as scipy's, applied as a small weight matrix); the two steps are
separable, so every output voxel is still interpolated from the input once.

The voxels move between layouts as few times as possible: the image is transposed
once to one plane per slice (in its own dtype; see :mod:`mlnb.augment.layout`),
each plane becomes float32 in a buffer just before its warp, OpenCV writes into
the result, and one transpose gives the (H, W, depth) output. Label codes stay
in (H, W, depth), the layout OpenCV warps as channels.

Value transforms (``Normalise``, ``Intensity``) compose into one
``scale * v + offset`` applied after the warp, computed from the input's value
range; warping commutes with it because interpolation weights sum to one.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from scipy import ndimage

from mlnb.augment import affine, layout
from mlnb.augment.pair import Augmented, LabelCodes, Pair, Trace
from mlnb.errors import MlnbError

OPENCV_INTERPOLATION = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR, 3: cv2.INTER_CUBIC}
OPENCV_MAX_CHANNELS = 512  # CV_CN_MAX


class Plan:
    """A chain of transforms composed into per-slice matrices, a grid and a value map."""

    def __init__(self, plane: tuple[int, int], depth: int, trace: Trace, labels: LabelCodes | None = None):
        self.plane = tuple(plane)
        self.depth = depth  # slices (or channels) of the input
        self.slices = depth  # slices of the output
        self.trace = trace
        self.labels = labels
        self.forward = np.eye(3)[None]  # (1 or depth, 3, 3): input plane -> current plane
        self.values = []

    def then(self, matrix: np.ndarray) -> None:
        """Compose a forward map: one (3, 3) matrix, or one per input slice (depth, 3, 3)."""
        if matrix.ndim == 3 and self.slices != self.depth:
            raise MlnbError(f"{self.trace.source}: a per-slice transform after a change of the slice count "
                            "cannot be fused; put it before the resampling")
        self.forward = matrix @ self.forward

    def regrid(self, matrix: np.ndarray, plane, slices: int | None = None) -> None:
        """Compose a map that also changes the output grid (crop, resample)."""
        slices = self.slices if slices is None else slices
        self.then(matrix)
        self.trace.regrid(matrix, self.slices, slices)
        self.plane, self.slices = tuple(plane), slices

    def add_values(self, transform) -> None:
        self.values.append(transform)

    def pulls(self) -> np.ndarray:
        return np.linalg.inv(self.forward)

    def segmentation_mask(self) -> np.ndarray | None:
        """The foreground of the segmentation as the chain so far leaves it, (H, W, depth)."""
        if self.labels is None:
            return None
        return warp_labels(self.labels.codes, self.pulls(), self.plane) != 0

    def value_map(self, low: float, high: float) -> tuple[float, float]:
        """Compose the value transforms into one (scale, offset) for input values in [low, high]."""
        scale, offset = 1.0, 0.0
        for transform in self.values:
            step_scale, step_offset = transform.value_map(low, high)
            scale, offset = step_scale * scale, step_scale * offset + step_offset
            low, high = sorted((step_scale * low + step_offset, step_scale * high + step_offset))
        return scale, offset


def plan_chain(transforms, plane, depth, trace: Trace, labels: LabelCodes | None = None) -> Plan:
    plan = Plan(plane, depth, trace, labels)
    for transform in transforms:
        transform.fuse(plan)
    return plan


def warp_stack(stack: np.ndarray, pulls: np.ndarray, plane, order: int) -> np.ndarray:
    """Resample each (H, W) plane of ``stack`` (any dtype) onto ``plane`` through its pull map, edges repeated,
    into a (depth, h, w) float32 result that OpenCV writes directly.

    Each plane is first copied, as float32, into one buffer: the copy streams it into the cache, where the
    warp's scattered reads find it (warping float32 planes straight from the stack takes 2.5 times as long).
    """
    plane = tuple(plane)
    if affine.is_identity(pulls) and plane == stack.shape[1:]:
        return stack.astype(np.float32)
    out = np.empty((len(stack), *plane), np.float32)
    source = np.empty(stack.shape[1:], np.float32)
    for index, raw in enumerate(stack):
        np.copyto(source, raw, casting="unsafe")
        pull = pulls[index if len(pulls) > 1 else 0]
        if order in OPENCV_INTERPOLATION:
            cv2.warpAffine(source, affine.to_opencv(pull), (plane[1], plane[0]), out[index],
                           flags=OPENCV_INTERPOLATION[order] | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
        else:
            ndimage.affine_transform(source, pull, output_shape=plane, output=out[index], order=order,
                                     mode="nearest")
    return out


def warp_labels(codes: np.ndarray, pulls: np.ndarray, plane) -> np.ndarray:
    """Nearest-neighbour resampling of (H, W, depth) label codes; outside the input is background (0).

    With one map for all slices OpenCV takes up to 512 slices per call, as channels, in the (H, W, depth)
    layout itself; with a map per slice each slice is warped as one plane.
    """
    plane = tuple(plane)
    if affine.is_identity(pulls) and plane == codes.shape[:2]:
        return codes.copy()
    flags, size = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, (plane[1], plane[0])

    def warp(source: np.ndarray, pull: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return cv2.warpAffine(source, affine.to_opencv(pull), size, out, flags=flags,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    depth = codes.shape[2]
    if len(pulls) > 1:
        stack = layout.planes(codes)
        out = np.empty((depth, *plane), codes.dtype)
        for source, pull, target in zip(stack, pulls, out, strict=True):
            warp(source, pull, target)
        return layout.interleave(out)
    if depth <= OPENCV_MAX_CHANNELS:
        return warp(np.ascontiguousarray(codes), pulls[0]).reshape(*plane, depth)
    out = np.empty((*plane, depth), codes.dtype)
    for start in range(0, depth, OPENCV_MAX_CHANNELS):
        planes = slice(start, start + OPENCV_MAX_CHANNELS)
        out[:, :, planes] = warp(np.ascontiguousarray(codes[:, :, planes]), pulls[0]).reshape(*plane, -1)
    return out


@functools.lru_cache(maxsize=64)
def slice_weights(depth_in: int, depth_out: int, order: int) -> np.ndarray:
    """(depth_out, depth_in) weights of a 1-D ``scipy.ndimage.zoom`` along the slice axis.

    Zoom is linear, so zooming each unit vector gives its column.
    """
    columns = [ndimage.zoom(unit, depth_out / depth_in, order=order, mode="nearest")
               for unit in np.eye(depth_in)]
    weights = np.stack(columns, axis=1)
    if weights.shape[0] != depth_out:
        raise MlnbError(f"cannot resample {depth_in} slices to {depth_out}")
    weights.setflags(write=False)
    return weights


def resample_slices(stack: np.ndarray, slices: int, order: int) -> np.ndarray:
    if slices == len(stack):
        return stack
    weights = slice_weights(len(stack), slices, order).astype(np.float32)
    return np.tensordot(weights, stack, axes=1)


def nearest_slices(depth_in: int, depth_out: int) -> np.ndarray:
    return slice_weights(depth_in, depth_out, 0).argmax(axis=1)


def apply_fused(pair: Pair, transforms, order: int = 3) -> Augmented:
    """Augment ``pair`` by ``transforms`` with a single resampling."""
    trace = Trace(pair.source, pair.kind)
    labels = pair.label_codes()
    plan = plan_chain(transforms, pair.plane, pair.depth, trace, labels)
    pulls = plan.pulls()

    low, high = pair.value_range()
    image = resample_slices(warp_stack(pair.image_slices(), pulls, plan.plane, order), plan.slices, order)
    # Cubic kernels overshoot at sharp edges (a dark halo round a skull-stripped
    # brain, up to 15 % of the range); keep values within the input's range.
    np.clip(image, low, high, out=image)
    scale, offset = plan.value_map(low, high)
    image *= np.float32(scale)
    image += np.float32(offset)

    seg = None
    if labels is not None:
        codes = warp_labels(labels.codes, pulls, plan.plane)
        if plan.slices != pair.depth:  # only volumes change their slice count; nearest slices are copies
            codes = np.take(codes, nearest_slices(pair.depth, plan.slices), axis=2)
        seg = labels.decode(codes, pair.kind)
    return trace.result(to_layout(image, pair.kind), seg)


def to_layout(stack: np.ndarray, kind: str) -> np.ndarray:
    """(depth, H, W) back to the blog's layout: (H, W) grey, (H, W, depth) otherwise."""
    return stack[0] if kind == "grey" else layout.interleave(stack)
