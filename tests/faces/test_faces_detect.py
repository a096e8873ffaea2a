from __future__ import annotations

import cv2
import numpy as np
import pytest

from mlnb.errors import ConfigError
from mlnb.faces.detect import FaceLandmarker, choose_face, upsample_levels


def test_choose_face_ignores_a_weak_detection_even_when_it_is_larger():
    # the astronaut at upsample 1: face (91x91, score 1.16) and mission patch (90x91, 0.12)
    areas, scores = np.array([8281.0, 9000.0]), np.array([1.16, 0.12])
    assert choose_face(areas, scores) == 0


def test_choose_face_takes_the_largest_confident_face():
    areas, scores = np.array([4000.0, 9000.0, 12000.0]), np.array([1.5, 0.9, 0.2])
    assert choose_face(areas, scores) == 1


def test_upsample_levels_try_cheap_first():
    assert upsample_levels(0) == (0,)
    assert upsample_levels(2) == (0, 1, 2)
    with pytest.raises(ConfigError, match="upsample"):
        upsample_levels(-1)


def test_astronaut_face_and_nothing_else_at_upsample_1_in_grey(photos):
    """Fed grey, as the aligner feeds it (in colour the mission patch beside the face fires too:
    the numbers in test_choose_face_ignores_a_weak_detection_even_when_it_is_larger)."""
    astronaut = photos[0]
    grey = cv2.cvtColor(astronaut.image, cv2.COLOR_RGB2GRAY)
    face = FaceLandmarker((1,), coarse=False).find_face(grey)
    assert face.count == 1 and face.upsample == 1
    left, top, right, bottom = face.box
    cx, cy, _ = astronaut.face
    assert left < cx < right and top < cy < bottom


def test_landmarks_fall_inside_the_face_box(photos, aligner):
    gray = cv2.cvtColor(photos[1].image, cv2.COLOR_RGB2GRAY)
    face = aligner.landmarker.find_face(gray)
    landmarks = aligner.landmarker.landmarks(gray, face.box)
    left, top, right, bottom = face.box
    assert landmarks.shape == (68, 2)
    inner = landmarks[17:]  # brows, eyes, nose, mouth (the jaw may leave the box)
    assert (inner[:, 0] > left).all() and (inner[:, 0] < right).all()
    assert (inner[:, 1] > top).all() and (inner[:, 1] < bottom).all()


def test_no_face_in_noise(no_face, aligner):
    assert aligner.landmarker.find_face(cv2.cvtColor(no_face, cv2.COLOR_RGB2GRAY)) is None
