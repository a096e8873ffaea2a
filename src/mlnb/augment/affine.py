"""In-plane affine maps as 3x3 homogeneous matrices in (row, col) pixel coordinates.

Every matrix built here is a *forward* map: it sends a pixel position of the
input plane to where that content lands in the output plane. Composing
transforms is matrix multiplication (the later transform on the left); a
resampler needs the inverse, the *pull* map from output pixels back to input
positions (scipy's ``affine_transform`` and OpenCV's ``WARP_INVERSE_MAP``
convention).

Pixel centres sit at integer positions, the centre of an ``n``-pixel axis at
``(n - 1) / 2`` — the convention of ``scipy.ndimage.rotate`` and ``zoom``, which
the blog's sequential chain uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special

#: swaps (row, col) and (x, y) = (col, row) in homogeneous coordinates
_SWAP = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def centre(shape: Sequence[int]) -> np.ndarray:
    return (np.asarray(shape[:2], dtype=float) - 1) / 2


def translation(rows: float, cols: float) -> np.ndarray:
    return np.array([[1.0, 0.0, rows], [0.0, 1.0, cols], [0.0, 0.0, 1.0]])


def about_centre(linear: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The 2x2 ``linear`` map applied about the centre of a plane of ``shape``."""
    middle = centre(shape)
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    return translation(*middle) @ matrix @ translation(*-middle)


def rotation(degrees: float, shape: Sequence[int]) -> np.ndarray:
    """Rotation about the plane's centre, with the sign of ``scipy.ndimage.rotate``."""
    cos, sin = special.cosdg(degrees), special.sindg(degrees)  # exact at multiples of 90
    return about_centre(np.array([[cos, -sin], [sin, cos]]), shape)


def scaling(factor: float, shape: Sequence[int]) -> np.ndarray:
    """Zoom about the plane's centre (> 1 enlarges the content)."""
    return about_centre(np.diag([factor, factor]), shape)


def flip(shape: Sequence[int], rows: bool, cols: bool) -> np.ndarray:
    """Mirror the row axis (``np.flipud``) and/or the column axis (``np.fliplr``)."""
    return about_centre(np.diag([-1.0 if rows else 1.0, -1.0 if cols else 1.0]), shape)


def axis_scale(size_in: int, size_out: int) -> float:
    """Corner-aligned scale of ``scipy.ndimage.zoom``: first and last pixel centres stay put."""
    return (size_out - 1) / (size_in - 1) if size_in > 1 and size_out > 1 else 1.0


def resize(shape_in: Sequence[int], shape_out: Sequence[int]) -> np.ndarray:
    """Map a grid of ``shape_in`` onto ``shape_out`` (any number of axes; corner-aligned like ``zoom``).

    A one-pixel axis maps its single pixel centre to the other grid's centre.
    """
    ndim = len(shape_in)
    matrix = np.eye(ndim + 1)
    for axis, (size_in, size_out) in enumerate(zip(shape_in, shape_out, strict=True)):
        matrix[axis, axis] = axis_scale(size_in, size_out)
        if size_in == 1 or size_out == 1:
            matrix[axis, ndim] = (size_out - 1) / 2 - (size_in - 1) / 2
    return matrix


def to_opencv(pull: np.ndarray) -> np.ndarray:
    """The 2x3 matrix ``cv2.warpAffine(..., flags=WARP_INVERSE_MAP)`` takes for a (row, col) pull map."""
    return (_SWAP @ pull @ _SWAP)[:2]


def normalised_coordinates(shape: Sequence[int]) -> np.ndarray:
    """(x, y) pixel coordinates -> torch's [-1, 1] coordinates with ``align_corners=True``."""
    height, width = shape[:2]
    return np.array([[2.0 / max(width - 1, 1), 0.0, -1.0],
                     [0.0, 2.0 / max(height - 1, 1), -1.0],
                     [0.0, 0.0, 1.0]])


def to_torch_theta(pull: np.ndarray, shape_in: Sequence[int], shape_out: Sequence[int]) -> np.ndarray:
    """The 2x3 ``theta`` of ``torch.nn.functional.affine_grid`` (align_corners=True) for a pull map."""
    pull_xy = _SWAP @ pull @ _SWAP
    theta = normalised_coordinates(shape_in) @ pull_xy @ np.linalg.inv(normalised_coordinates(shape_out))
    return theta[:2]


def is_identity(matrices: np.ndarray) -> bool:
    return bool(np.array_equal(matrices, np.broadcast_to(np.eye(3), matrices.shape)))
