from __future__ import annotations

import numpy as np

from mlnb.data import celeba_format
from mlnb.demo import placement
from mlnb.demo.photos import FacePhoto
from mlnb.faces import align
from mlnb.rng import generator


def test_draws_cover_the_ranges_and_repeat_with_the_seed():
    draws = [placement.Jitter.draw(generator(3, "jitter", i)) for i in range(400)]
    rotations = np.array([jitter.rotation_degrees for jitter in draws])
    scales = np.array([jitter.scale for jitter in draws])
    shifts = np.array([jitter.shift for jitter in draws])
    assert np.abs(rotations).max() <= placement.MAX_ROTATION_DEGREES < np.abs(rotations).max() * 1.05
    assert placement.SCALE_RANGE[0] <= scales.min() < scales.max() <= placement.SCALE_RANGE[1]
    assert np.abs(shifts).max() <= placement.MAX_SHIFT
    assert placement.Jitter.draw(generator(3, "jitter", 0)) == draws[0]


def test_no_jitter_is_the_identity():
    np.testing.assert_allclose(placement.Jitter().matrix(), np.eye(2, 3), atol=1e-12)


def test_jitter_turns_and_scales_about_the_face_centre_then_shifts():
    jitter = placement.Jitter(rotation_degrees=30.0, scale=1.1, shift=(3.0, -2.0))
    centre = np.array([placement.FACE_BOX_CENTRE])
    np.testing.assert_allclose(align.apply_affine(jitter.matrix(), centre), centre + [3.0, -2.0], atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(jitter.matrix()[:, :2]), 1.1**2)
    assert jitter.record() == {"rotation_degrees": 30.0, "scale": 1.1, "shift": [3.0, -2.0]}


def test_mean_landmarks_are_placed_where_they_are():
    mean = np.array(celeba_format.MEAN_LANDMARKS)
    np.testing.assert_allclose(align.apply_affine(placement.landmark_placement(mean), mean), mean, atol=1e-9)


def test_a_face_box_is_placed_on_a_celeba_face_box():
    matrix = placement.box_placement((200.0, 100.0, 48.0))
    np.testing.assert_allclose(align.apply_affine(matrix, [[200.0, 100.0], [224.0, 100.0]]),
                               [placement.FACE_BOX_CENTRE,
                                np.add(placement.FACE_BOX_CENTRE, [placement.FACE_BOX_WIDTH / 2, 0])], atol=1e-12)


def test_frames_have_celeba_size_and_the_chosen_border():
    photo = FacePhoto("grey", np.full((40, 30, 3), 100, np.uint8), (15.0, 20.0, 30.0))
    shrink = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])  # the photo fills only the frame's top left
    frame = placement.warp_into_frame(photo.image, shrink, "constant", (1, 2, 3))
    assert frame.shape == (celeba_format.FRAME_HEIGHT, celeba_format.FRAME_WIDTH, 3)
    assert frame[5, 5].tolist() == [100, 100, 100] and frame[-1, -1].tolist() == [1, 2, 3]
    assert (placement.warp_into_frame(photo.image, shrink) == 100).all()  # reflected edges: no colour
    assert placement.jittered_frame(photo, generator(0, "frame")).shape == frame.shape
