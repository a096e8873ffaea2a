"""Face photos that installed packages ship, and the image and zip writers the replicas use.

scikit-image's astronaut and LFW subset (the first 100 are 25x25 grayscale faces,
upscaled here to 100 px and padded) and matplotlib's Grace Hopper. They are read
straight from the packages' files (scikit-image is the optional ``demo`` extra).
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

from mlnb.demo.resources import PackageResource
from mlnb.io import atomic_path

ASTRONAUT = PackageResource("skimage", "data/astronaut.png")
GRACE_HOPPER = PackageResource("matplotlib", "mpl-data/sample_data/grace_hopper.jpg")
LFW_SUBSET = PackageResource("skimage", "data/lfw_subset.npy")
LFW_FACES = 100  # the subset's first 100 entries are faces, the rest are not
LFW_SIDE, LFW_BORDER = 100, 25
#: fixed member timestamps, so the same members always give the same zip bytes
ZIP_DATE = (2015, 9, 28, 0, 0, 0)


@dataclass(frozen=True)
class FacePhoto:
    """An RGB photo and its face's box (centre x, centre y, width) as dlib finds it."""

    name: str
    image: np.ndarray
    face: tuple[float, float, float]


def lfw_photo(face: np.ndarray, name: str) -> FacePhoto:
    """A 25x25 LFW face in [0, 1] as an RGB photo: upscaled to 100 px, edges replicated."""
    gray = cv2.resize(np.round(face * 255).astype(np.uint8), (LFW_SIDE, LFW_SIDE), interpolation=cv2.INTER_CUBIC)
    padded = cv2.copyMakeBorder(gray, *(LFW_BORDER,) * 4, cv2.BORDER_REPLICATE)
    return FacePhoto(name, np.repeat(padded[:, :, None], 3, axis=2), (73.0, 81.0, 72.0))


def photo_resources(lfw_count: int = 0) -> list[PackageResource]:
    """The files :func:`face_photos` reads for ``lfw_count``."""
    return [ASTRONAUT, GRACE_HOPPER] + ([LFW_SUBSET] if lfw_count else [])


def face_photos(lfw_count: int = 0) -> list[FacePhoto]:
    """The astronaut, Grace Hopper, and the first ``lfw_count`` (<= 100) LFW faces."""
    photos = [
        FacePhoto("astronaut", np.asarray(Image.open(ASTRONAUT.file()).convert("RGB")), (222.5, 126.5, 88.0)),
        FacePhoto("grace_hopper", np.asarray(Image.open(GRACE_HOPPER.file()).convert("RGB")), (268.5, 244.5, 216.0)),
    ]
    if lfw_count:
        faces = np.load(LFW_SUBSET.file())[:min(lfw_count, LFW_FACES)]
        photos += [lfw_photo(face, f"lfw_{i:03d}") for i, face in enumerate(faces)]
    return photos


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
