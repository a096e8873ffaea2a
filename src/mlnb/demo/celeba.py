"""The CelebA replica: package-shipped face photos put "in the wild" in CelebA's frame and format.

Each photo whose face dlib finds is placed by its five landmarks and jittered
(:mod:`mlnb.demo.placement`) into a 178x218 JPEG; the JPEGs are zipped as
``img_align_celeba.zip``, the landmarks file is computed from the recorded
transforms, and a partition file splits them 80/10/10. Two deliberately bad
entries (a truncated JPEG and a tiny image) exercise the faces stage's error paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mlnb.data.celeba_format import FILES, IMAGES_FOLDER, LANDMARK_COLUMNS, MEAN_LANDMARKS, image_name
from mlnb.demo.photos import encode_image, face_photos, photo_resources, write_zip
from mlnb.demo.placement import Jitter, frame_transform, landmark_placement, warp_into_frame
from mlnb.faces import align
from mlnb.io import atomic_path
from mlnb.rng import generator

LFW_COUNT = 100
#: copies of each photo larger than this many rows (the LFW faces are used once)
COPIES_OF_PHOTOS, LARGE_PHOTO_ROWS = 4, 200
TRAIN_FRACTION, VALID_FRACTION = 0.8, 0.1


@dataclass(frozen=True)
class SourceFace:
    name: str
    image: np.ndarray  # RGB uint8
    landmarks: np.ndarray  # 5x2, in celeba_format.LANDMARK_NAMES's order


def source_faces(lfw_count: int = LFW_COUNT) -> Iterator[SourceFace]:
    """Package-shipped face photos whose landmarks dlib finds (others are skipped)."""
    from mlnb.faces.detect import FaceLandmarker  # loads dlib: only for this replica

    landmarker = FaceLandmarker(upsamples=(0, 1))
    for photo in face_photos(lfw_count=lfw_count):
        gray = cv2.cvtColor(photo.image, cv2.COLOR_RGB2GRAY)
        face = landmarker.find_face(gray)
        if face is not None:
            yield SourceFace(photo.name, photo.image, align.celeba_points(landmarker.landmarks(gray, face.box)))


def jittered_face(face: SourceFace, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """The face in a CelebA frame (placed by its landmarks, jittered, random background), its landmarks there,
    and a record."""
    jitter = Jitter.draw(rng)
    matrix = frame_transform(landmark_placement(face.landmarks), jitter)
    background = "reflect" if rng.random() < 0.5 else "constant"
    colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
    photo = warp_into_frame(face.image, matrix, background, colour)
    record = {"source": face.name, "source_landmarks": face.landmarks.tolist(), **jitter.record(),
              "background": background, "background_colour": colour, "matrix": matrix.tolist()}
    return photo, align.apply_affine(matrix, face.landmarks), record


def build(out: Path, seed: int) -> dict:
    entries: list[tuple[bytes, np.ndarray, dict]] = []
    for face in source_faces():
        copies = COPIES_OF_PHOTOS if face.image.shape[0] > LARGE_PHOTO_ROWS else 1
        for copy in range(copies):
            photo, landmarks, record = jittered_face(face, generator(seed, "replica", "celeba", face.name, copy))
            entries.append((encode_image(photo), landmarks, record))
    # Deliberately bad entries, as a real scrape may have: the faces stage must record, not crash.
    truncated = entries[0][0][: len(entries[0][0]) // 3]
    tiny = encode_image(np.full((8, 8, 3), 128, np.uint8))
    for data, why in ((truncated, "truncated JPEG"), (tiny, "8x8 image")):
        entries.append((data, np.asarray(MEAN_LANDMARKS), {"source": "deliberately bad", "problem": why}))

    names = [image_name(number) for number in range(1, len(entries) + 1)]
    write_zip(out / FILES["images"],
              ((f"{IMAGES_FOLDER}/{name}", data) for name, (data, _, _) in zip(names, entries, strict=True)))
    with atomic_path(out / FILES["landmarks"]) as tmp:
        rows = [f"{name} " + " ".join(str(int(round(v))) for v in landmarks.ravel())
                for name, (_, landmarks, _) in zip(names, entries, strict=True)]
        tmp.write_text(f"{len(names)}\n{' '.join(LANDMARK_COLUMNS)}\n" + "\n".join(rows) + "\n")
    n_train, n_valid = int(len(names) * TRAIN_FRACTION), int(len(names) * VALID_FRACTION)
    with atomic_path(out / FILES["partition"]) as tmp:
        split = [0 if i < n_train else 1 if i < n_train + n_valid else 2 for i in range(len(names))]
        tmp.write_text("".join(f"{name} {s}\n" for name, s in zip(names, split, strict=True)))
    records = {name: record for name, (_, _, record) in zip(names, entries, strict=True)}
    return {"sources": [resource.record() for resource in photo_resources(LFW_COUNT)],
            "images": len(names), "jitter": records}
