from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from mlnb.demo.photos import encode_image
from mlnb.faces.images import JPEG_FRAME_MARKERS, BadImage, decode_bgr, jpeg_frame


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


@pytest.mark.parametrize(("mode", "options"), [("RGB", {}), ("RGB", {"progressive": True}), ("L", {}), ("CMYK", {})])
def test_jpeg_frame_reads_what_pil_reads(replica_faces, mode, options):
    buffer = io.BytesIO()
    Image.fromarray(replica_faces[0][1][:150, :120]).convert(mode).save(buffer, "JPEG", **options)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as image:
        assert jpeg_frame(data) == (image.mode, *image.size) == (mode, 120, 150)


def test_jpeg_frame_leaves_everything_else_to_pil(replica_faces, bad_images):
    jpeg = encode_image(replica_faces[0][1])
    frame_at = next(i for i in range(2, len(jpeg)) if jpeg[i] == 0xFF and jpeg[i + 1] in JPEG_FRAME_MARKERS)
    twelve_bit = jpeg[:frame_at + 4] + bytes([12]) + jpeg[frame_at + 5:]
    scan_first = jpeg[:2] + b"\xff\xda\x00\x02" + jpeg[2:]
    for data in (encode_image(replica_faces[0][1], "PNG"), jpeg[:frame_at], twelve_bit, scan_first,
                 bad_images["bad/garbage.jpg"][0]):
        assert jpeg_frame(data) is None
    with pytest.raises(BadImage, match="^corrupt: not a recognised image format$"):  # PIL's verdict, as before
        decode_bgr(twelve_bit, min_side=32)
