"""Samples: quantisation, grids, the GIF, the Turing-test page, the face-detection rate."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mlnb.dcgan.face_rate import face_detection_rate
from mlnb.dcgan.samples import sample_grid, save_gif, save_png, to_uint8, turing_page


def test_generator_output_is_quantised_like_saved_images():
    images = torch.tensor([-1.0, -0.5, 0.0, 1.0, 1.2]).view(1, 1, 1, 5)
    assert to_uint8(images).ravel().tolist() == [0, 64, 128, 255, 255]


def test_grid_of_64_images_is_8_by_8_and_png_round_trips(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    grid = sample_grid(images)
    assert grid.shape == (8 * 10 + 2, 8 * 10 + 2)
    assert np.array_equal(grid[2:10, 12:20], images[1, ..., 0])
    save_png(grid, tmp_path / "grid.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "grid.png")), grid)


def test_gif_holds_every_frame(tmp_path):
    frames = [np.full((10, 10, 3), value, np.uint8) for value in (0, 120, 250)]
    save_gif(frames, tmp_path / "samples.gif")
    gif = Image.open(tmp_path / "samples.gif")
    assert gif.n_frames == 3 and gif.info["loop"] == 0
    with pytest.raises(ValueError, match="at least one frame"):
        save_gif([], tmp_path / "empty.gif")
    assert not (tmp_path / "empty.gif").exists()


def test_turing_page_shuffles_every_image_with_its_truth_hidden_until_clicked():
    real, fake = np.zeros((10, 8, 8, 3), np.uint8), np.full((10, 8, 8, 3), 255, np.uint8)
    page = turing_page(real, fake, np.random.default_rng(0), "faces")
    truths = re.findall(r'data-truth="(\w+)"', page)
    assert sorted(truths) == ["generated"] * 10 + ["real"] * 10
    assert truths != ["real"] * 10 + ["generated"] * 10  # shuffled (1 chance in 184,756 otherwise)
    assert page.count("<figcaption>?</figcaption>") == 20
    assert page == turing_page(real, fake, np.random.default_rng(0), "faces")


def test_face_detection_rate_finds_a_face_and_not_noise():
    from skimage import data

    face = cv2.resize(data.astronaut()[40:170, 160:290], (64, 64), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert face_detection_rate(np.stack([face, *noise])) == 0.25
    assert face_detection_rate(face[None, ..., :1]) == 1.0
