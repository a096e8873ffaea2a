from __future__ import annotations

import csv
import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest

from mlnb.cli import main
from mlnb.faces import align, replica
from mlnb.faces.pipeline import ALIGNED, BAD_IMAGE, CELEBA_LANDMARKS, DLIB, NO_FACE, parse_landmarks
from mlnb.faces.sources import CELEBA_LANDMARK_COLUMNS

GOOD_COUNT = 18  # more than one worker chunk, so that --workers 2 really uses two processes
NO_FACE_MEMBER = "img_align_celeba/no_face.jpg"
CRC_MEMBER = "img_align_celeba/bad_crc.jpg"
MISSING_MEMBER = "img_align_celeba/not_in_zip.jpg"
NO_FACE_LANDMARKS = align.celeba_template_points(64) * 1.6 + [38, 70]


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


@pytest.fixture(scope="module")
def celeba_replica(tmp_path_factory, replica_faces, no_face, bad_images):
    """A CelebA-like zip (good faces, a face-less image, bad files, a bad CRC) and its index.csv."""
    folder = tmp_path_factory.mktemp("celeba")
    members = [(f"img_align_celeba/{i:06d}.jpg", replica.encode_image(face))
               for i, (_, face) in enumerate(replica_faces[:GOOD_COUNT])]
    members += [(NO_FACE_MEMBER, replica.encode_image(no_face)), (CRC_MEMBER, replica.encode_image(no_face))]
    members += [(name, data) for name, (data, _) in bad_images.items()]
    members += [("img_align_celeba/README.txt", b"not an image: skipped without an index")]
    archive = replica.write_zip(folder / "img_align_celeba.zip", members)
    corrupt_member(archive, CRC_MEMBER)
    index = folder / "index.csv"
    with open(index, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "member", "partition", *CELEBA_LANDMARK_COLUMNS])
        names = [name for name, _ in members if name.endswith((".jpg", ".png"))] + [MISSING_MEMBER]
        for name in names:
            landmarks = NO_FACE_LANDMARKS.ravel() if name == NO_FACE_MEMBER else [""] * 10
            writer.writerow([Path(name).name, name, 0, *landmarks])
    return archive, index, names


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_image_in_the_index_is_accounted_for(celeba_replica, bad_images, tmp_path):
    archive, index, names = celeba_replica
    assert main(["align", str(archive), "--index", str(index), "--out", str(tmp_path)]) == 0
    rows = read_manifest(tmp_path)
    faces = np.load(tmp_path / "faces.npy")
    by_source = {row["source"]: row for row in rows}
    assert [row["source"] for row in rows] == names
    assert faces.dtype == np.uint8 and faces.shape[1:] == (64, 64, 3)
    aligned = [row for row in rows if row["status"] == ALIGNED]
    assert [int(row["index"]) for row in aligned] == list(range(len(faces)))
    assert all(row["index"] == "" for row in rows if row["status"] != ALIGNED)
    for name, (_, code) in bad_images.items():
        assert by_source[name]["status"] == BAD_IMAGE and by_source[name]["reason"].startswith(f"{code}: ")
    for name in (CRC_MEMBER, MISSING_MEMBER):
        assert by_source[name]["status"] == BAD_IMAGE and by_source[name]["reason"].startswith("unreadable: ")
    fallback = by_source[NO_FACE_MEMBER]
    assert (fallback["status"], fallback["method"]) == (ALIGNED, CELEBA_LANDMARKS)
    np.testing.assert_allclose(parse_landmarks(fallback["landmarks"]), NO_FACE_LANDMARKS, atol=1e-4)
    dlib_rows = [row for row in aligned if row["method"] == DLIB]
    assert len(dlib_rows) >= 0.6 * GOOD_COUNT
    assert all(parse_landmarks(row["landmarks"]).shape == (68, 2) for row in dlib_rows)
    # the recorded transform is the one that made the face
    row = dlib_rows[0]
    matrix = np.array([float(row[k]) for k in ("m00", "m01", "m02", "m10", "m11", "m12")]).reshape(2, 3)
    expected = align.openface_affine(parse_landmarks(row["landmarks"]), (39, 42, 57), 64)
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-4)
    # images dlib could not find and that have no CelebA landmarks are recorded, not aligned
    assert all(row["reason"].endswith("no CelebA landmarks to fall back on")
               for row in rows if row["status"] == NO_FACE)


def test_without_index_zip_members_are_read_in_archive_order(celeba_replica, tmp_path):
    archive, _, names = celeba_replica
    assert main(["align", str(archive), "--out", str(tmp_path), "--size", "32", "--upsample", "0"]) == 0
    rows = read_manifest(tmp_path)
    assert [row["source"] for row in rows] == names[:-1]  # README.txt skipped, no missing member
    assert np.load(tmp_path / "faces.npy").shape[1:] == (32, 32, 3)
    assert {row["upsample"] for row in rows if row["method"] == DLIB} == {"0"}
    assert read_manifest(tmp_path)[names.index(NO_FACE_MEMBER)]["status"] == NO_FACE


def test_shards_split_the_index_in_order(celeba_replica, tmp_path):
    archive, index, names = celeba_replica
    sources = []
    for shard in range(3):
        out = tmp_path / str(shard)
        assert main(["align", str(archive), "--index", str(index), "--shard", str(shard), "--shards", "3",
                     "--out", str(out)]) == 0
        sources += [row["source"] for row in read_manifest(out)]
    assert sources == names


def test_two_workers_write_the_same_bytes_as_one(celeba_replica, tmp_path):
    archive, index, _ = celeba_replica
    for workers in (1, 2):
        assert main(["align", str(archive), "--index", str(index), "--workers", str(workers),
                     "--out", str(tmp_path / str(workers))]) == 0
    for name in ("faces.npy", "manifest.csv"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()


def test_directories_and_files_are_inputs(replica_faces, bad_images, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.jpg").write_bytes(replica.encode_image(replica_faces[0][1]))
    (folder / "a.png").write_bytes(bad_images["bad/cmyk.jpg"][0])
    (folder / "notes.txt").write_text("skipped")
    single = tmp_path / "single.jpg"
    single.write_bytes(replica.encode_image(replica_faces[1][1]))
    assert main(["align", str(folder), str(single), "--out", str(tmp_path / "out")]) == 0
    rows = read_manifest(tmp_path / "out")
    assert [row["source"] for row in rows] == [str(folder / "a.png"), str(folder / "sub" / "b.jpg"), str(single)]
    assert [row["status"] for row in rows] == [BAD_IMAGE, ALIGNED, ALIGNED]


@pytest.mark.parametrize(("extra", "message"), [
    (["--shard", "3", "--shards", "3"], "shard 3 of 3"),
    (["--upsample", "9"], "upsample must be between 0 and 4"),
    (["--size", "8"], "face size must be between 16 and 1024"),
    (["--workers", "0"], "--workers must be at least 1"),
])
def test_bad_arguments_fail_with_one_clear_line(celeba_replica, tmp_path, caplog, extra, message):
    archive, index, _ = celeba_replica
    with caplog.at_level(logging.ERROR):
        assert main(["align", str(archive), "--index", str(index), "--out", str(tmp_path), *extra]) == 2
    assert message in caplog.text
    assert not (tmp_path / "manifest.csv").exists()


def test_bad_inputs_and_indexes_are_named(celeba_replica, tmp_path, caplog):
    archive, index, _ = celeba_replica
    broken = tmp_path / "index.csv"
    broken.write_text("image_id,member\n1,a.jpg\n")
    cases = [
        (["align", str(tmp_path / "nowhere.zip"), "--out", str(tmp_path)], "nowhere.zip: no such file"),
        (["align", str(archive), str(archive), "--index", str(index), "--out", str(tmp_path)], "--index describes one"),
        (["align", str(archive), "--index", str(broken), "--out", str(tmp_path)], "missing columns"),
    ]
    for argv, message in cases:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert main(argv) == 2
        assert message in caplog.text
