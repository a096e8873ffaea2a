"""Between the blog's (H, W, depth) layout and one contiguous (H, W) plane per slice, bit for bit.

OpenCV warps one contiguous plane at a time, while images arrive as (H, W, depth): in C order, or in
Fortran order from nibabel (there each slice is one block, stored column by column). Moving between the
two is a transpose. ``cv2.transpose`` does it in cache-sized blocks, several times faster than numpy's
strided copy (``np.moveaxis`` + ``np.ascontiguousarray``), and it copies elements by their size, so viewed
as unsigned integers of that size any dtype (big-endian included) keeps every bit.
"""

from __future__ import annotations

import cv2
import numpy as np

#: element size -> a dtype of that size that ``cv2.transpose`` takes (it copies whole elements)
_CARRIERS = {1: np.uint8, 2: np.uint16, 4: np.int32, 8: np.float64}


def transpose(matrix: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``matrix.T`` (2-D) as a C-contiguous copy, written into ``out`` when given (C-contiguous, same dtype)."""
    carrier = _CARRIERS.get(matrix.dtype.itemsize)
    if carrier is None:
        if out is None:
            return np.ascontiguousarray(matrix.T)
        out[...] = matrix.T
        return out
    matrix = np.ascontiguousarray(matrix)
    if out is None:
        return cv2.transpose(matrix.view(carrier)).view(matrix.dtype)
    cv2.transpose(matrix.view(carrier), out.view(carrier))
    return out


def planes(volume: np.ndarray) -> np.ndarray:
    """(H, W, depth) -> (depth, H, W), C-contiguous, in the volume's dtype."""
    height, width, depth = volume.shape
    if volume.flags.f_contiguous and not volume.flags.c_contiguous:
        # volume.T is (depth, W, H) in C order: each slice's plane is transposed on its own
        stack = np.empty((depth, height, width), volume.dtype)
        for source, target in zip(volume.T, stack, strict=True):
            transpose(source, out=target)
        return stack
    return transpose(volume.reshape(-1, depth)).reshape(depth, height, width)


def interleave(stack: np.ndarray) -> np.ndarray:
    """(depth, H, W) -> (H, W, depth), C-contiguous: the inverse of :func:`planes`."""
    depth, height, width = stack.shape
    return transpose(stack.reshape(depth, -1)).reshape(height, width, depth)


def c_order_copy(volume: np.ndarray) -> np.ndarray:
    """A C-ordered copy of an (H, W, depth) volume; from Fortran order two blocked transposes, several times
    faster than numpy's copy across the axes."""
    if volume.flags.f_contiguous and not volume.flags.c_contiguous:
        return interleave(planes(volume))
    return np.array(volume, order="C")
