from __future__ import annotations

import numpy as np
import pytest

from mlnb.demo.photos import encode_image
from mlnb.faces.images import BadImage, decode_bgr


def test_every_bad_image_is_refused_with_its_reason(bad_images):
    for name, (data, code) in bad_images.items():
        with pytest.raises(BadImage) as caught:
            decode_bgr(data, min_side=32)
        assert caught.value.code == code, name
        assert str(caught.value).startswith(f"{code}: ")


def test_rgb_jpeg_decodes_to_bgr(replica_faces):
    rgb = replica_faces[0][1]
    bgr = decode_bgr(encode_image(rgb, "PNG"), min_side=32)  # lossless: exact comparison
    np.testing.assert_array_equal(bgr, rgb[:, :, ::-1])


@pytest.mark.parametrize("mode", ["RGBA", "P"])
def test_alpha_and_palette_images_are_colour_images(replica_faces, mode):
    rgb = replica_faces[0][1]
    bgr = decode_bgr(encode_image(rgb, "PNG", mode=mode), min_side=32)
    assert bgr.shape == rgb.shape and bgr.dtype == np.uint8


def test_minimum_side_is_configurable(replica_faces):
    data = encode_image(replica_faces[0][1][:20, :24], "PNG")
    assert decode_bgr(data, min_side=16).shape == (20, 24, 3)
