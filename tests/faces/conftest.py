"""Face fixtures built from package-shipped photos (scikit-image, matplotlib)."""

from __future__ import annotations

import csv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlnb.data.celeba_format import FILES, FRAME_SIZE, IMAGES_FOLDER, LANDMARK_COLUMNS, image_name
from mlnb.demo.photos import FacePhoto, encode_image, face_photos, write_zip
from mlnb.demo.placement import jittered_frame
from mlnb.faces import align
from mlnb.faces.pipeline import Aligner
from mlnb.faces.settings import FacesSettings
from mlnb.rng import generator

SEED = 20170601
#: LFW faces used beside the astronaut and Grace Hopper
LFW_COUNT = 30


@pytest.fixture(scope="session")
def aligner() -> Aligner:
    """The schema's settings (64 px, inner eyes + bottom lip) searching up to upsample 1; models load once."""
    return Aligner(FacesSettings.from_mapping({"upsample": 1}))


@pytest.fixture(scope="session")
def photos() -> list[FacePhoto]:
    return face_photos(lfw_count=LFW_COUNT)


@pytest.fixture(scope="session")
def replica_faces(photos) -> list[tuple[str, np.ndarray]]:
    """CelebA-like 178x218 RGB frames, each photo's face jittered by the demo's model."""
    return [(photo.name, jittered_frame(photo, generator(SEED, "faces", i))) for i, photo in enumerate(photos)]


@pytest.fixture(scope="session")
def no_face() -> np.ndarray:
    """A 178x218 RGB image of smooth colour noise: no face anywhere."""
    noise = generator(SEED, "no-face").integers(0, 256, size=(22, 18, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(noise).resize(FRAME_SIZE, Image.BILINEAR))


@pytest.fixture(scope="session")
def bad_images(replica_faces) -> dict[str, tuple[bytes, str]]:
    """Member name -> (bytes, the reason code the aligner must record)."""
    face = replica_faces[0][1]
    jpeg, png = encode_image(face), encode_image(face, "PNG")
    return {
        "bad/garbage.jpg": (b"definitely not an image " * 40, "corrupt"),
        "bad/empty.jpg": (b"", "corrupt"),
        "bad/truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "bad/truncated.png": (png[: len(png) // 2], "truncated"),
        "bad/grayscale.jpg": (encode_image(face, mode="L"), "grayscale"),
        "bad/grayscale-alpha.png": (encode_image(face, "PNG", mode="LA"), "grayscale"),
        "bad/cmyk.jpg": (encode_image(face, mode="CMYK"), "cmyk"),
        "bad/tiny.png": (encode_image(face[:20, :24], "PNG"), "too-small"),
    }


@dataclass(frozen=True)
class CelebaReplica:
    """A CelebA-like zip and its index.csv; ``names`` are the index's members in order."""

    archive: Path
    index: Path
    names: list[str]
    good_count: int = 18  # with the rest, more than one worker chunk: two workers both get work
    no_face_member: str = f"{IMAGES_FOLDER}/no_face.jpg"
    crc_member: str = f"{IMAGES_FOLDER}/bad_crc.jpg"
    missing_member: str = f"{IMAGES_FOLDER}/not_in_zip.jpg"
    #: CelebA landmarks given for the face-less image (the only ones in the index)
    no_face_landmarks: tuple[float, ...] = tuple((align.celeba_template_points(64) * 1.6 + [38, 70]).ravel())


def corrupt_member(path: Path, member: str) -> None:
    """Flip a byte of a stored member's data, so that reading it fails its CRC check."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    with open(path, "r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_length, extra_length = np.frombuffer(handle.read(4), dtype="<u2")
        handle.seek(info.header_offset + 30 + int(name_length) + int(extra_length) + 100)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))


@pytest.fixture(scope="session")
def celeba_replica(tmp_path_factory, replica_faces, no_face, bad_images) -> CelebaReplica:
    """Good faces, a face-less image, every kind of bad file, a bad CRC; the index adds a missing member."""
    folder = tmp_path_factory.mktemp("celeba")
    spec = CelebaReplica(folder / FILES["images"], folder / "index.csv", [])
    members = [(f"{IMAGES_FOLDER}/{image_name(i + 1)}", encode_image(face))
               for i, (_, face) in enumerate(replica_faces[:spec.good_count])]
    members += [(spec.no_face_member, encode_image(no_face)),
                (spec.crc_member, encode_image(no_face))]
    members += [(name, data) for name, (data, _) in bad_images.items()]
    members += [(f"{IMAGES_FOLDER}/README.txt", b"not an image: skipped without an index")]
    write_zip(spec.archive, members)
    corrupt_member(spec.archive, spec.crc_member)
    names = [name for name, _ in members if name.endswith((".jpg", ".png"))] + [spec.missing_member]
    with open(spec.index, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "member", "partition", *LANDMARK_COLUMNS])
        for name in names:
            landmarks = spec.no_face_landmarks if name == spec.no_face_member else [""] * 10
            writer.writerow([Path(name).name, name, 0, *landmarks])
    return CelebaReplica(spec.archive, spec.index, names)
