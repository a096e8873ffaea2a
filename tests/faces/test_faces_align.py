from __future__ import annotations

import numpy as np
import pytest

from mlnb.errors import ConfigError
from mlnb.faces import align
from mlnb.rng import generator


def random_similarity(rng: np.random.Generator) -> np.ndarray:
    angle, scale = rng.uniform(-np.pi, np.pi), rng.uniform(0.3, 3.0)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, rng.uniform(-100, 100, size=(2, 1))])


def test_template_is_openface_mean_face_in_unit_square():
    template = align.minmax_template()
    assert align.mean_face_template().shape == (68, 2)
    np.testing.assert_array_equal(template.min(axis=0), [0.0, 0.0])
    np.testing.assert_array_equal(template.max(axis=0), [1.0, 1.0])
    # OpenFace's TEMPLATE[0] = (0.0792396913815, 0.339223741112), y range 0.18236..1.06080
    np.testing.assert_allclose(template[0], [0.0, (0.339223741112 - 0.182360980) / (1.060803710 - 0.182360980)],
                               atol=1e-8)
    # anatomy: inner eye corners between the outer ones, bottom lip below the nose tip
    x, y = template[:, 0], template[:, 1]
    assert x[36] < x[39] < x[42] < x[45]
    assert y[30] < y[33] < y[57] < y[8]


def test_openface_affine_sends_chosen_landmarks_exactly_onto_template():
    landmarks = generator(1, "landmarks").uniform(0, 200, size=(68, 2))
    for name, indices in align.LANDMARK_SETS.items():
        matrix = align.openface_affine(landmarks, indices, 96)
        mapped = align.apply_affine(matrix, landmarks[list(indices)])
        np.testing.assert_allclose(mapped, align.template_points(indices, 96), atol=1e-3, err_msg=name)


def test_similarity_transform_recovers_a_known_similarity():
    rng = generator(2, "similarity")
    points = rng.uniform(0, 200, size=(5, 2))
    for _ in range(20):
        known = random_similarity(rng)
        estimated = align.similarity_transform(points, align.apply_affine(known, points))
        np.testing.assert_allclose(estimated, known, atol=1e-9)


def test_similarity_rotates_and_scales_about_centre_then_moves_it_to_target():
    matrix = align.similarity(90.0, 2.0, (10.0, 20.0), (100.0, 50.0))
    # OpenCV's angle is counter-clockwise on screen (y down): +x turns to -y
    np.testing.assert_allclose(align.apply_affine(matrix, [[10, 20], [11, 20], [10, 21]]),
                               [[100, 50], [100, 48], [102, 50]], atol=1e-12)


def test_compose_is_applying_one_map_after_the_other():
    rng = generator(4, "compose")
    outer, inner = random_similarity(rng), random_similarity(rng)
    points = rng.uniform(0, 200, size=(5, 2))
    np.testing.assert_allclose(align.apply_affine(align.compose(outer, inner), points),
                               align.apply_affine(outer, align.apply_affine(inner, points)), atol=1e-9)


def test_similarity_transform_never_reflects():
    points = generator(3, "mirror").uniform(0, 100, size=(5, 2))
    mirrored = points * [-1, 1]
    matrix = align.similarity_transform(points, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_celeba_similarity_undoes_a_known_similarity_of_the_landmarks():
    rng = generator(4, "celeba")
    landmarks = align.celeba_template_points(64) * 2.5 + [20, 40]  # a face in a larger image
    direct = align.celeba_similarity(landmarks, 64)
    for _ in range(10):
        known = random_similarity(rng)
        moved = align.celeba_similarity(align.apply_affine(known, landmarks), 64)
        np.testing.assert_allclose(align.compose(moved, known), direct, atol=1e-9)


def test_celeba_similarity_of_template_points_is_identity_up_to_scale():
    matrix = align.celeba_similarity(align.celeba_template_points(64) * 2, 64)
    np.testing.assert_allclose(matrix, [[0.5, 0, 0], [0, 0.5, 0]], atol=1e-12)


def test_collinear_landmarks_give_an_unusable_map():
    landmarks = np.zeros((68, 2))
    landmarks[:, 0] = np.arange(68)
    landmarks[:, 1] = 2 * np.arange(68)
    assert not align.is_usable(align.openface_affine(landmarks, align.LANDMARK_SETS["inner-eyes-bottom-lip"], 64))
    assert align.is_usable(align.celeba_similarity(align.celeba_template_points(64), 64))


def test_unknown_landmark_set_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown landmark set 'nose-only'"):
        align.landmark_indices("nose-only")


def test_warp_face_output_shape_and_black_outside():
    image = np.full((50, 40, 3), 200, dtype=np.uint8)
    shifted = np.array([[1.0, 0, 30], [0, 1.0, 0]])  # image moves right: left strip is outside
    face = align.warp_face(image, shifted, 64)
    assert face.shape == (64, 64, 3) and face.dtype == np.uint8
    assert (face[:, :29] == 0).all() and (face[:40, 31:64] == 200).all()


def test_maps_with_non_finite_entries_or_a_collapsing_linear_part_are_unusable():
    usable = np.array([[0.5, 0.1, 3.0], [-0.1, 0.5, 4.0]])
    assert align.is_usable(usable)
    for row, column, value in ((0, 0, np.nan), (1, 2, np.inf), (0, 2, -np.inf)):
        broken = usable.copy()
        broken[row, column] = value
        assert not align.is_usable(broken), (row, column, value)
    assert not align.is_usable(np.array([[1.0, 2.0, 0.0], [2.0, 4.0 + 1e-7, 0.0]]))  # |det| 1e-7
    assert align.is_usable(np.array([[1.0, 2.0, 0.0], [2.0, 4.0 + 1e-5, 0.0]]))  # |det| 1e-5


def test_openface_affine_leaves_its_cached_template_points_unchanged():
    landmarks = generator(5, "landmarks").uniform(0, 200, size=(68, 2))
    indices = align.LANDMARK_SETS["inner-eyes-bottom-lip"]
    first = align.openface_affine(landmarks, indices, 64)
    first[:] = 0  # the caller owns the map it gets
    np.testing.assert_array_equal(align.openface_affine(landmarks, list(indices), 64),
                                  align.openface_affine(landmarks, indices, 64))
    np.testing.assert_allclose(align.apply_affine(align.openface_affine(landmarks, indices, 64),
                                                  landmarks[list(indices)]),
                               align.template_points(indices, 64), atol=1e-3)
