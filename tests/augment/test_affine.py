"""The matrix conventions: scipy's rotation sign, zoom's corner alignment, OpenCV's and torch's frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from mlnb.augment import affine


def dot(shape, row, col):
    image = np.zeros(shape, np.float32)
    image[row, col] = 1.0
    return image


@pytest.mark.parametrize("degrees", [90, -90, 180, 30])
def test_rotation_has_the_sign_of_scipy_rotate(degrees):
    image = dot((21, 21), 4, 15)
    rotated = ndimage.rotate(image, degrees, reshape=False, order=1)
    landed = np.unravel_index(np.argmax(rotated), rotated.shape)
    predicted = affine.rotation(degrees, image.shape) @ [4, 15, 1]
    np.testing.assert_allclose(predicted[:2], landed, atol=0.5)


def test_composition_and_inverse():
    shape = (30, 40)
    there_and_back = affine.rotation(7, shape) @ affine.rotation(-7, shape)
    np.testing.assert_allclose(there_and_back, np.eye(3), atol=1e-12)
    flip_twice = affine.flip(shape, True, True) @ affine.flip(shape, True, True)
    np.testing.assert_array_equal(flip_twice, np.eye(3))
    np.testing.assert_allclose(affine.scaling(1.25, shape) @ affine.scaling(0.8, shape), np.eye(3), atol=1e-12)


def test_resize_keeps_the_corner_pixel_centres_like_zoom():
    matrix = affine.resize((33, 41), (16, 20))
    np.testing.assert_allclose(matrix @ [0, 0, 1], [0, 0, 1])
    np.testing.assert_allclose(matrix @ [32, 40, 1], [15, 19, 1])
    np.testing.assert_allclose(affine.resize((1, 9), (5, 9)) @ [0, 4, 1], [2, 4, 1])


def test_opencv_and_torch_frames_move_content_the_same_way():
    image = dot((17, 23), 5, 7)
    forward = affine.translation(3, -2)  # content moves 3 rows down, 2 columns left
    pull = np.linalg.inv(forward)
    warped = cv2.warpAffine(image, affine.to_opencv(pull), (23, 17), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    assert warped[8, 5] == 1.0 and warped.sum() == 1.0
    theta = torch.from_numpy(affine.to_torch_theta(pull, (17, 23), (17, 23))).float()[None]
    grid = F.affine_grid(theta, [1, 1, 17, 23], align_corners=True)
    sampled = F.grid_sample(torch.from_numpy(image)[None, None], grid, mode="nearest", align_corners=True)
    assert sampled[0, 0, 8, 5] == 1.0 and sampled.sum() == 1.0
    np.testing.assert_allclose(affine.to_torch_theta(np.eye(3), (5, 9), (5, 9)), [[1, 0, 0], [0, 1, 0]])
