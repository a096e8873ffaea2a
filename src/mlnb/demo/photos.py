"""CelebA-like 178x218 face images built from photos that installed packages ship.

For tests, benchmarks and offline demos: scikit-image's astronaut and LFW subset
(the first 100 are 25x25 grayscale faces, upscaled here to 100 px and padded)
and matplotlib's Grace Hopper, each placed into a CelebA-sized canvas by a
similarity transform (optionally jittered) that puts the face about where
CelebA's aligned images have it. scikit-image is the optional ``demo`` extra.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from mlnb.io import atomic_path, package_file

CANVAS_WIDTH, CANVAS_HEIGHT = 178, 218
#: where a CelebA face sits: centre of dlib's face box and its width, in canvas pixels
CANVAS_FACE_CENTRE = (89.0, 122.0)
CANVAS_FACE_WIDTH = 96.0
LFW_SIDE, LFW_BORDER = 100, 25
#: fixed member timestamps, so the same members always give the same zip bytes
ZIP_DATE = (2015, 9, 28, 0, 0, 0)


@dataclass(frozen=True)
class FacePhoto:
    """An RGB photo and its face's box (centre x, centre y, width) as dlib finds it."""

    name: str
    image: np.ndarray
    face: tuple[float, float, float]


def grace_hopper_path() -> Path:
    return package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")


def lfw_photo(face: np.ndarray, name: str) -> FacePhoto:
    """A 25x25 LFW face in [0, 1] as an RGB photo: upscaled to 100 px, edges replicated."""
    gray = cv2.resize(np.round(face * 255).astype(np.uint8), (LFW_SIDE, LFW_SIDE), interpolation=cv2.INTER_CUBIC)
    padded = cv2.copyMakeBorder(gray, *(LFW_BORDER,) * 4, cv2.BORDER_REPLICATE)
    return FacePhoto(name, np.repeat(padded[:, :, None], 3, axis=2), (73.0, 81.0, 72.0))


def face_photos(lfw_count: int = 0) -> list[FacePhoto]:
    """The astronaut, Grace Hopper, and the first ``lfw_count`` (<= 100) LFW faces."""
    import skimage.data

    photos = [
        FacePhoto("astronaut", skimage.data.astronaut(), (222.5, 126.5, 88.0)),
        FacePhoto("grace_hopper", np.asarray(Image.open(grace_hopper_path()).convert("RGB")), (268.5, 244.5, 216.0)),
    ]
    if lfw_count:
        faces = skimage.data.lfw_subset()[:min(lfw_count, 100)]
        photos += [lfw_photo(face, f"lfw_{i:03d}") for i, face in enumerate(faces)]
    return photos


def similarity(angle_degrees: float, scale: float, centre: tuple[float, float],
               target: tuple[float, float]) -> np.ndarray:
    """2x3 map that rotates by ``angle_degrees`` and scales about ``centre``, then moves it to ``target``."""
    matrix = cv2.getRotationMatrix2D(centre, angle_degrees, scale)
    matrix[:, 2] += np.asarray(target) - np.asarray(centre)
    return matrix


def canvas_transform(photo: FacePhoto, rng: np.random.Generator | None = None) -> np.ndarray:
    """The similarity placing ``photo``'s face in a CelebA canvas; ``rng`` jitters it.

    Jitter: rotation within +-12 degrees, scale x0.85..1.15, shift within +-8 px.
    """
    cx, cy, width = photo.face
    angle, scale, shift = 0.0, 1.0, np.zeros(2)
    if rng is not None:
        angle, scale, shift = rng.uniform(-12, 12), rng.uniform(0.85, 1.15), rng.uniform(-8, 8, size=2)
    target = np.asarray(CANVAS_FACE_CENTRE) + shift
    return similarity(angle, scale * CANVAS_FACE_WIDTH / width, (cx, cy), tuple(target))


def place_on_canvas(photo: FacePhoto, matrix: np.ndarray) -> np.ndarray:
    """The 178x218 RGB canvas showing ``photo`` through ``matrix`` (edges reflected, no black)."""
    return cv2.warpAffine(photo.image, matrix, (CANVAS_WIDTH, CANVAS_HEIGHT), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def encode_image(rgb: np.ndarray, image_format: str = "JPEG", mode: str = "RGB") -> bytes:
    """``rgb`` (HxWx3 uint8) as an image file in PIL's ``image_format`` and ``mode`` (JPEGs at quality 95)."""
    buffer = io.BytesIO()
    options = {"quality": 95} if image_format == "JPEG" else {}
    Image.fromarray(rgb).convert(mode).save(buffer, format=image_format, **options)
    return buffer.getvalue()


def write_zip(path: str | Path, members: Iterable[tuple[str, bytes]]) -> Path:
    """A zip of (member name, bytes), stored uncompressed as JPEGs gain nothing from deflate."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members:
            archive.writestr(zipfile.ZipInfo(name, ZIP_DATE), data)
    return Path(path)
