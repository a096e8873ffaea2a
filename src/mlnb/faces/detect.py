"""dlib's HOG face detector and 68-point shape predictor, loaded once per process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Face:
    """The chosen detection: box (left, top, right, bottom), score, how it was found."""

    box: tuple[int, int, int, int]
    score: float
    upsample: int
    count: int  # detections at that upsampling, the chosen one included


def choose_face(areas: np.ndarray, scores: np.ndarray) -> int:
    """Index of the largest detection among those scoring near the best."""
    candidates = scores >= CANDIDATE_SCORE_FRACTION * scores.max()
    return int(np.argmax(np.where(candidates, areas, -1)))


def upsample_levels(max_upsample: int) -> tuple[int, ...]:
    """Upsampling levels tried in turn: 0 first (cheap), more only when nothing is found."""
    if not 0 <= max_upsample <= 4:
        raise ConfigError(f"upsample must be between 0 and 4, got {max_upsample}")
    return tuple(range(max_upsample + 1))


class FaceLandmarker:
    """Finds the main face of a grayscale image and its 68 landmarks.

    ``upsamples`` are the HOG pyramid upsamplings tried in order until one finds a
    face: ``(0, 1)`` costs upsample 0's time on images whose face is at least
    ~80 px and only pays for upsample 1 on the rest; ``(1,)`` is OpenFace's fixed
    choice. Build one per worker process: loading the predictor takes ~0.5 s.
    """

    def __init__(self, upsamples: tuple[int, ...] = (0, 1), predictor: Path | None = None):
        if not upsamples:
            raise ConfigError("at least one upsampling level is needed")
        self.upsamples = upsamples
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(predictor or model_path(SHAPE_PREDICTOR_68)))

    def find_face(self, gray: np.ndarray) -> Face | None:
        for upsample in self.upsamples:
            rects, scores, _ = self.detector.run(gray, upsample, 0.0)
            if len(rects):
                areas = np.array([rect.area() for rect in rects], dtype=np.float64)
                chosen = choose_face(areas, np.asarray(scores))
                best = rects[chosen]
                return Face(
                    box=(best.left(), best.top(), best.right(), best.bottom()),
                    score=float(scores[chosen]),
                    upsample=upsample,
                    count=len(rects),
                )
        return None

    def landmarks(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """The 68 landmarks (68x2 float64 pixel coordinates) inside ``box``."""
        shape = self.predictor(gray, dlib.rectangle(*box))
        return np.array([(point.x, point.y) for point in shape.parts()], dtype=np.float64)
