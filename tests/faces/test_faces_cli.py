from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from mlnb.cli import main
from mlnb.demo.photos import encode_image
from mlnb.faces import align
from mlnb.faces.pipeline import (
    ALIGNED,
    BAD_IMAGE,
    CELEBA_LANDMARKS,
    DLIB,
    NO_FACE,
    align_faces,
    parse_landmarks,
    parse_matrix,
)
from mlnb.faces.settings import FacesSettings


def read_manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_image_in_the_index_is_accounted_for(celeba_replica, bad_images, tmp_path):
    archive, index, names = celeba_replica.archive, celeba_replica.index, celeba_replica.names
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
    for name in (celeba_replica.crc_member, celeba_replica.missing_member):
        assert by_source[name]["status"] == BAD_IMAGE and by_source[name]["reason"].startswith("unreadable: ")
    fallback = by_source[celeba_replica.no_face_member]
    assert (fallback["status"], fallback["method"]) == (ALIGNED, CELEBA_LANDMARKS)
    np.testing.assert_allclose(parse_landmarks(fallback["landmarks"]),
                               np.reshape(celeba_replica.no_face_landmarks, (5, 2)), atol=1e-4)
    dlib_rows = [row for row in aligned if row["method"] == DLIB]
    assert len(dlib_rows) >= 0.6 * celeba_replica.good_count
    assert all(parse_landmarks(row["landmarks"]).shape == (68, 2) for row in dlib_rows)
    # the recorded transform is the one that made the face
    row = dlib_rows[0]
    matrix = parse_matrix(row)
    expected = align.openface_affine(parse_landmarks(row["landmarks"]), (39, 42, 57), 64)
    np.testing.assert_allclose(matrix, expected, rtol=1e-5, atol=1e-4)
    # images dlib could not find and that have no CelebA landmarks are recorded, not aligned
    assert all(row["reason"].endswith("no CelebA landmarks to fall back on")
               for row in rows if row["status"] == NO_FACE)


def test_without_index_zip_members_are_read_in_archive_order(celeba_replica, tmp_path):
    archive, names = celeba_replica.archive, celeba_replica.names
    assert main(["align", str(archive), "--out", str(tmp_path), "--size", "32", "--upsample", "0"]) == 0
    rows = read_manifest(tmp_path)
    assert [row["source"] for row in rows] == names[:-1]  # README.txt skipped, no missing member
    assert np.load(tmp_path / "faces.npy").shape[1:] == (32, 32, 3)
    assert {row["upsample"] for row in rows if row["method"] == DLIB} == {"0"}
    assert read_manifest(tmp_path)[names.index(celeba_replica.no_face_member)]["status"] == NO_FACE


def test_shards_split_the_index_in_order(celeba_replica, tmp_path):
    archive, index, names = celeba_replica.archive, celeba_replica.index, celeba_replica.names
    sources = []
    for shard in range(3):
        out = tmp_path / str(shard)
        assert main(["align", str(archive), "--index", str(index), "--shard", str(shard), "--shards", "3",
                     "--out", str(out)]) == 0
        sources += [row["source"] for row in read_manifest(out)]
    assert sources == names


def test_align_faces_from_python_writes_what_the_command_writes(celeba_replica, tmp_path):
    archive, index = celeba_replica.archive, celeba_replica.index
    assert main(["align", str(archive), "--index", str(index), "--shard", "1", "--shards", "3",
                 "--out", str(tmp_path / "command")]) == 0
    counts = align_faces([archive], tmp_path / "python", FacesSettings.from_mapping({"shards": 3}), index, shard=1)
    assert sum(counts.values()) == len(read_manifest(tmp_path / "python")) > 0
    for name in ("faces.npy", "manifest.csv"):
        assert (tmp_path / "python" / name).read_bytes() == (tmp_path / "command" / name).read_bytes()


def test_worker_processes_write_the_same_bytes_as_one_process(celeba_replica, tmp_path):
    archive, index = celeba_replica.archive, celeba_replica.index
    argv = ["align", str(archive), "--index", str(index)]
    assert main([*argv, "--out", str(tmp_path / "in-process")]) == 0
    assert main([*argv, "--workers", "2", "--out", str(tmp_path / "pool")]) == 0
    for name in ("faces.npy", "manifest.csv"):
        assert (tmp_path / "in-process" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes()


def test_directories_and_files_are_inputs(replica_faces, bad_images, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.jpg").write_bytes(encode_image(replica_faces[0][1]))
    (folder / "a.png").write_bytes(bad_images["bad/cmyk.jpg"][0])
    (folder / "notes.txt").write_text("skipped")
    single = tmp_path / "single.jpg"
    single.write_bytes(encode_image(replica_faces[1][1]))
    assert main(["align", str(folder), str(single), "--out", str(tmp_path / "out")]) == 0
    rows = read_manifest(tmp_path / "out")
    assert [row["source"] for row in rows] == [str(folder / "a.png"), str(folder / "sub" / "b.jpg"), str(single)]
    assert [row["status"] for row in rows] == [BAD_IMAGE, ALIGNED, ALIGNED]


@pytest.mark.parametrize(("extra", "message"), [
    (["--shard", "3", "--shards", "3"], "shard 3 of 3"),
    (["--upsample", "9"], "command line: faces.upsample: 9 is greater than the maximum of 3"),
    (["--size", "8"], "command line: faces.size: 8 is less than the minimum of 16"),
    (["--workers", "0"], "command line: faces.threads: 0 is less than the minimum of 1"),
])
def test_bad_arguments_fail_with_one_clear_line(celeba_replica, tmp_path, caplog, extra, message):
    archive, index = celeba_replica.archive, celeba_replica.index
    with caplog.at_level(logging.ERROR):
        assert main(["align", str(archive), "--index", str(index), "--out", str(tmp_path), *extra]) == 2
    assert message in caplog.text
    assert not (tmp_path / "manifest.csv").exists()


def test_bad_inputs_and_indexes_are_named(celeba_replica, tmp_path, caplog):
    archive, index = celeba_replica.archive, celeba_replica.index
    broken = tmp_path / "index.csv"
    broken.write_text("image_id,member\n1,a.jpg\n")
    cases = [
        (["align", str(tmp_path / "nowhere.zip"), "--out", str(tmp_path)], "nowhere.zip: no such file"),
        (["align", str(index), "--index", str(index), "--out", str(tmp_path)],
         "neither a directory nor a readable zip archive"),
        (["align", str(archive), str(archive), "--index", str(index), "--out", str(tmp_path)], "--index describes one"),
        (["align", str(archive), "--index", str(broken), "--out", str(tmp_path)], "missing columns"),
    ]
    for argv, message in cases:
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert main(argv) == 2
        assert message in caplog.text
