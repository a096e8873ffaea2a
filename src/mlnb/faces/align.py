"""OpenFace's alignment geometry: the mean-face template and the maps onto it.

OpenFace's ``align-dlib.py`` sends three of dlib's 68 landmarks (inner eyes and
bottom lip by default) onto the same three points of its normalised mean face,
scaled to the output size, with one affine map. When only CelebA's five
landmarks are known, :func:`celeba_similarity` fits a similarity transform from
them onto the matching points of the same template, so both methods crop the
same geometry.
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import cv2
import numpy as np

from mlnb.errors import ConfigError, DataError

TEMPLATE_FILE = "openface_mean_face_template.csv"

#: landmark sets that OpenFace's align-dlib offers (indices into dlib's 68 points)
LANDMARK_SETS: dict[str, tuple[int, int, int]] = {
    "inner-eyes-bottom-lip": (39, 42, 57),
    "outer-eyes-nose": (36, 45, 33),
}

#: CelebA's five landmarks, in celeba_format.LANDMARK_NAMES's order, as groups of template points
#: (image-left eye, image-right eye, nose tip, image-left and right mouth corner)
CELEBA_TEMPLATE_GROUPS: tuple[tuple[int, ...], ...] = (
    tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,),
)

#: smallest |det| of a 2x2 linear part that still counts as a usable map
MIN_DETERMINANT = 1e-6


@functools.cache
def mean_face_template() -> np.ndarray:
    """OpenFace's 68-point mean face (68x2, float64), read from the package data."""
    text = resources.files("mlnb.faces").joinpath(TEMPLATE_FILE).read_text()
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    table = np.loadtxt(rows[1:], delimiter=",", ndmin=2)  # rows[0] is the header index,x,y
    template = table[np.argsort(table[:, 0]), 1:]
    if template.shape != (68, 2):
        raise DataError(f"{TEMPLATE_FILE}: expected 68 rows of index,x,y, found shape {table.shape}")
    return template


@functools.cache
def minmax_template() -> np.ndarray:
    """The template rescaled to the unit square, as OpenFace's MINMAX_TEMPLATE."""
    template = mean_face_template()
    low, high = template.min(axis=0), template.max(axis=0)
    return (template - low) / (high - low)


def landmark_indices(name: str) -> tuple[int, int, int]:
    try:
        return LANDMARK_SETS[name]
    except KeyError:
        raise ConfigError(f"unknown landmark set {name!r}; choose one of {sorted(LANDMARK_SETS)}") from None


def template_points(indices: tuple[int, ...], size: int) -> np.ndarray:
    """Where the landmarks ``indices`` land in a ``size`` x ``size`` aligned face."""
    return size * minmax_template()[list(indices)]


def celeba_points(points68: np.ndarray) -> np.ndarray:
    """CelebA's five landmarks (5x2: eye centres, nose tip, mouth corners) from 68 dlib-ordered points."""
    points68 = np.asarray(points68, dtype=np.float64)
    return np.array([points68[list(group)].mean(axis=0) for group in CELEBA_TEMPLATE_GROUPS])


def celeba_template_points(size: int) -> np.ndarray:
    """Where CelebA's five landmarks land in a ``size`` x ``size`` aligned face (5x2)."""
    return size * celeba_points(minmax_template())


@functools.cache
def _affine_target(indices: tuple[int, int, int], size: int) -> np.ndarray:
    """:func:`template_points` as the float32 points that OpenCV's getAffineTransform takes (read-only)."""
    target = template_points(indices, size).astype(np.float32)
    target.flags.writeable = False
    return target


def openface_affine(landmarks: np.ndarray, indices: tuple[int, int, int], size: int) -> np.ndarray:
    """The 2x3 affine map sending ``landmarks[indices]`` exactly onto the template."""
    source = np.asarray(landmarks, dtype=np.float32)[list(indices)]
    return cv2.getAffineTransform(source, _affine_target(tuple(indices), size)).astype(np.float64)


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, shift) from ``source`` to ``target``.

    Umeyama's closed form without reflection; both are Nx2 point sets, N >= 2.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / source_centred.var(axis=0).sum()
    linear = scale * rotation
    return np.hstack([linear, (target_mean - linear @ source_mean)[:, None]])


def similarity(angle_degrees: float, scale: float, centre: tuple[float, float],
               target: tuple[float, float]) -> np.ndarray:
    """The 2x3 map that rotates by ``angle_degrees`` and scales about ``centre``, then moves it to ``target``."""
    matrix = cv2.getRotationMatrix2D(tuple(map(float, centre)), float(angle_degrees), float(scale))
    matrix[:, 2] += np.asarray(target, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    return matrix


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine map of ``outer`` applied after ``inner``."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def celeba_similarity(celeba_landmarks: np.ndarray, size: int) -> np.ndarray:
    """The similarity that sends CelebA's five landmarks (5x2) onto the template."""
    return similarity_transform(celeba_landmarks, celeba_template_points(size))


def is_usable(matrix: np.ndarray) -> bool:
    """A finite map that does not collapse the face (e.g. from collinear landmarks)."""
    (a, b, shift_x), (c, d, shift_y) = matrix.tolist()  # Python floats: numpy is slow on six numbers
    return all(map(math.isfinite, (a, b, c, d, shift_x, shift_y))) and abs(a * d - b * c) > MIN_DETERMINANT


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map Nx2 points through a 2x3 affine matrix."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Resample the aligned ``size`` x ``size`` face (bilinear, black outside, as OpenFace)."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR)
