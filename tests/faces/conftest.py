"""Face fixtures built from package-shipped photos (scikit-image, matplotlib)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mlnb.faces import replica
from mlnb.faces.pipeline import Aligner, AlignOptions
from mlnb.rng import generator

SEED = 20170601
#: LFW faces used beside the astronaut and Grace Hopper
LFW_COUNT = 30


@pytest.fixture(scope="session")
def aligner() -> Aligner:
    """Default options (64 px, inner eyes + bottom lip, upsample 0 then 1); models load once."""
    return Aligner(AlignOptions())


@pytest.fixture(scope="session")
def photos() -> list[replica.FacePhoto]:
    return replica.face_photos(lfw_count=LFW_COUNT)


@pytest.fixture(scope="session")
def replica_faces(photos) -> list[tuple[str, np.ndarray]]:
    """CelebA-like 178x218 RGB canvases, each photo's face similarity-jittered."""
    return [
        (photo.name, replica.place_on_canvas(photo, replica.canvas_transform(photo, generator(SEED, "faces", i))))
        for i, photo in enumerate(photos)
    ]


@pytest.fixture(scope="session")
def no_face() -> np.ndarray:
    """A 178x218 RGB image of smooth colour noise: no face anywhere."""
    noise = generator(SEED, "no-face").integers(0, 256, size=(22, 18, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(noise).resize((178, 218), Image.BILINEAR))


@pytest.fixture(scope="session")
def bad_images(replica_faces) -> dict[str, tuple[bytes, str]]:
    """Member name -> (bytes, the reason code the aligner must record)."""
    face = replica_faces[0][1]
    jpeg, png = replica.encode_image(face), replica.encode_image(face, "PNG")
    return {
        "bad/garbage.jpg": (b"definitely not an image " * 40, "corrupt"),
        "bad/empty.jpg": (b"", "corrupt"),
        "bad/truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "bad/truncated.png": (png[: len(png) // 2], "truncated"),
        "bad/grayscale.jpg": (replica.encode_image(face, mode="L"), "grayscale"),
        "bad/grayscale-alpha.png": (replica.encode_image(face, "PNG", mode="LA"), "grayscale"),
        "bad/cmyk.jpg": (replica.encode_image(face, mode="CMYK"), "cmyk"),
        "bad/tiny.png": (replica.encode_image(face[:20, :24], "PNG"), "too-small"),
    }
