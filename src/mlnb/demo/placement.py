"""How a replica puts a photo's face into CelebA's 178x218 frame: one placement, one jitter model.

A face is first placed where CelebA has its faces, from its five landmarks (onto
CelebA's mean landmarks) or from dlib's face box (onto the box dlib finds in
CelebA's images); then :class:`Jitter` rotates and scales it about the frame's face
centre and shifts it, as faces "in the wild" are before alignment. The demo's CelebA
replica, the faces tests and the faces benchmark all use this one model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from mlnb.data.celeba_format import FRAME_SIZE, MEAN_LANDMARKS
from mlnb.demo.photos import FacePhoto
from mlnb.faces import align

#: where dlib's face box sits in a CelebA frame: its centre and width, in frame pixels
FACE_BOX_CENTRE = (89.0, 122.0)
FACE_BOX_WIDTH = 96.0
#: the jitter's ranges: rotation within +-degrees, scale factor, shift within +-pixels on each axis
MAX_ROTATION_DEGREES = 12.0
SCALE_RANGE = (0.85, 1.15)
MAX_SHIFT = 8.0
BORDERS = {"reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}


@dataclass(frozen=True)
class Jitter:
    """A rotation and scale about the frame's face centre, then a shift."""

    rotation_degrees: float = 0.0
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Jitter:
        rotation = float(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES))
        scale = float(rng.uniform(*SCALE_RANGE))
        shift = rng.uniform(-MAX_SHIFT, MAX_SHIFT, size=2)
        return cls(rotation, scale, (float(shift[0]), float(shift[1])))

    def matrix(self) -> np.ndarray:
        target = np.asarray(FACE_BOX_CENTRE) + self.shift
        return align.similarity(self.rotation_degrees, self.scale, FACE_BOX_CENTRE, tuple(target))

    def record(self) -> dict:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}


def landmark_placement(landmarks: np.ndarray) -> np.ndarray:
    """The similarity sending a face's five CelebA landmarks (5x2) nearest to CelebA's mean ones."""
    return align.similarity_transform(landmarks, np.asarray(MEAN_LANDMARKS))


def box_placement(face_box: tuple[float, float, float]) -> np.ndarray:
    """The similarity sending dlib's face box (centre x, centre y, width) onto a CelebA face's box."""
    centre_x, centre_y, width = face_box
    return align.similarity(0.0, FACE_BOX_WIDTH / width, (centre_x, centre_y), FACE_BOX_CENTRE)


def frame_transform(placement: np.ndarray, jitter: Jitter) -> np.ndarray:
    return align.compose(jitter.matrix(), placement)


def warp_into_frame(image: np.ndarray, matrix: np.ndarray, border: str = "reflect",
                    colour: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """The 178x218 frame showing ``image`` through ``matrix``; outside it, ``border`` (reflected or ``colour``)."""
    return cv2.warpAffine(image, matrix, FRAME_SIZE, flags=cv2.INTER_LINEAR, borderMode=BORDERS[border],
                          borderValue=colour)


def jittered_frame(photo: FacePhoto, rng: np.random.Generator) -> np.ndarray:
    """``photo``'s face placed by its face box and jittered from ``rng``, edges reflected."""
    return warp_into_frame(photo.image, frame_transform(box_placement(photo.face), Jitter.draw(rng)))
