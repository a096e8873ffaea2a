"""dlib's HOG face detector and 68-point shape predictor, loaded once per process."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from mlnb.errors import ConfigError
from mlnb.faces.models import SHAPE_PREDICTOR_68, model_path

#: a detection counts as a face candidate when it scores at least this share of the
#: best score in the image; the largest candidate wins. At upsample 1 the detector
#: also fires weakly on face-sized non-faces (a mission patch beside the astronaut
#: scores 0.12 against the face's 1.16 with nearly the same area), which the plain
#: "largest box" rule of OpenFace would pick by chance.
CANDIDATE_SCORE_FRACTION = 0.5


#: the first, coarse pass shrinks the image by one step of dlib's own HOG pyramid
#: (5/6): it scans pyramid levels 1 and up, i.e. faces of ~96 px and more, for 63 %
#: of the cost of the full pyramid. CelebA's faces (~100 px) are found there; smaller
#: ones fall through to the full-resolution passes.
COARSE_SCALE = 5 / 6


@dataclass(frozen=True)
class DetectionPass:
    """One detector run: the image resized by ``scale``, then HOG at ``upsample``."""

    scale: float
    upsample: int


@dataclass(frozen=True)
class Face:
    """The chosen detection: box (left, top, right, bottom) in image pixels, score, how it was found."""

    box: tuple[int, int, int, int]
    score: float
    scale: float
    upsample: int
    count: int  # detections in that pass, the chosen one included


def choose_face(areas: Sequence[float], scores: Sequence[float]) -> int:
    """Index of the largest detection among those scoring near the best (the first of equals)."""
    floor = CANDIDATE_SCORE_FRACTION * max(scores)
    return max((i for i, score in enumerate(scores) if score >= floor), key=areas.__getitem__)


def upsample_levels(max_upsample: int) -> tuple[int, ...]:
    """Upsampling levels tried in turn: 0 first (cheap), more only when nothing is found."""
    if not 0 <= max_upsample <= 3:
        raise ConfigError(f"upsample must be between 0 and 3, got {max_upsample}")
    return tuple(range(max_upsample + 1))


def detection_passes(upsamples: tuple[int, ...], coarse: bool) -> tuple[DetectionPass, ...]:
    """The passes tried in turn, cheapest first; ``coarse`` adds the 5/6-scale pass before upsample 0."""
    if not upsamples:
        raise ConfigError("at least one upsampling level is needed")
    first = (DetectionPass(COARSE_SCALE, 0),) if coarse and upsamples[0] == 0 else ()
    return first + tuple(DetectionPass(1.0, upsample) for upsample in upsamples)


class FaceLandmarker:
    """Finds the main face of a grayscale image and its 68 landmarks.

    Detection runs pass after pass until one finds a face (see
    :func:`detection_passes`): with ``upsamples=(0, 1)`` an image with a face of
    ~96 px or more costs one coarse pass, smaller faces cost a full-resolution
    pass at upsample 0, and only images with no face there pay for upsample 1.
    ``upsamples=(1,), coarse=False`` is OpenFace's fixed choice. Build one per
    process: loading the predictor takes ~0.5 s (in a process of its own, the aligner
    then moves it to huge pages: :mod:`mlnb.faces.hugepages`).
    """

    def __init__(self, upsamples: tuple[int, ...] = (0, 1), predictor: Path | None = None, coarse: bool = True):
        self.passes = detection_passes(upsamples, coarse)
        self.upsamples = upsamples
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(predictor or model_path(SHAPE_PREDICTOR_68)))

    def find_face(self, gray: np.ndarray) -> Face | None:
        for detection in self.passes:
            image = gray if detection.scale == 1.0 else cv2.resize(
                gray, None, fx=detection.scale, fy=detection.scale, interpolation=cv2.INTER_AREA)
            rects, scores, _ = self.detector.run(image, detection.upsample, 0.0)
            if len(rects):
                chosen = choose_face([rect.area() for rect in rects], scores)
                best = rects[chosen]
                return Face(
                    box=tuple(round(v / detection.scale) for v in (best.left(), best.top(), best.right(),
                                                                      best.bottom())),
                    score=float(scores[chosen]),
                    scale=detection.scale,
                    upsample=detection.upsample,
                    count=len(rects),
                )
        return None

    def landmarks(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The 68 landmarks (68x2 float64 pixel coordinates) inside ``box``."""
        shape = self.predictor(gray, dlib.rectangle(*box))
        return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float64)
