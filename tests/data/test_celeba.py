from __future__ import annotations

import csv
import zipfile

import pytest

from mlnb.data import celeba, celeba_format
from mlnb.errors import DataError

HEADER = " ".join(celeba_format.LANDMARK_COLUMNS)


def make_celeba(folder, names, landmark_rows=None, partition_rows=None):
    with zipfile.ZipFile(folder / "img.zip", "w") as archive:
        for name in names:
            archive.writestr(f"img_align_celeba/{name}", b"jpeg bytes")
        archive.writestr("__MACOSX/img_align_celeba/._000001.jpg", b"junk")
    rows = landmark_rows if landmark_rows is not None else [f"{n} 69 109 106 113 77 142 73 152 108 154" for n in names]
    (folder / "landmarks.txt").write_text(f"{len(rows)}\n{HEADER}\n" + "\n".join(rows) + "\n")
    parts = partition_rows if partition_rows is not None else [f"{n} {i % 3}" for i, n in enumerate(names)]
    (folder / "partition.txt").write_text("\n".join(parts) + "\n")
    return folder / "img.zip", folder / "landmarks.txt", folder / "partition.txt"


def test_index_lists_every_image(tmp_path):
    files = make_celeba(tmp_path, ["000002.jpg", "000001.jpg", "000003.jpg"])
    counts = celeba.prepare(*files, tmp_path / "index.csv")
    assert counts == {"images": 3, "train": 1, "valid": 1, "test": 1}
    rows = list(csv.DictReader(open(tmp_path / "index.csv")))
    assert [r["image_id"] for r in rows] == ["000001.jpg", "000002.jpg", "000003.jpg"]
    assert rows[0]["member"] == "img_align_celeba/000001.jpg"
    assert rows[0]["lefteye_x"] == "69" and rows[0]["rightmouth_y"] == "154"


def test_limit_keeps_first_images(tmp_path):
    files = make_celeba(tmp_path, [f"{i:06d}.jpg" for i in range(1, 6)])
    assert celeba.prepare(*files, tmp_path / "index.csv", limit=2)["images"] == 2


def test_missing_landmarks_named(tmp_path):
    files = make_celeba(tmp_path, ["000001.jpg", "000002.jpg"],
                        landmark_rows=["000001.jpg 69 109 106 113 77 142 73 152 108 154"])
    with pytest.raises(DataError, match=r"landmarks\.txt: no landmarks for 1 images.*000002\.jpg"):
        celeba.prepare(*files, tmp_path / "index.csv")
    assert not (tmp_path / "index.csv").exists()


def test_bad_landmark_row_names_line(tmp_path):
    files = make_celeba(tmp_path, ["000001.jpg"], landmark_rows=["000001.jpg 69 109 x 113 77 142 73 152 108 154"])
    with pytest.raises(DataError, match=r"landmarks\.txt:3: non-integer"):
        celeba.prepare(*files, tmp_path / "index.csv")


def test_bad_partition_value(tmp_path):
    files = make_celeba(tmp_path, ["000001.jpg"], partition_rows=["000001.jpg 7"])
    with pytest.raises(DataError, match=r"partition\.txt:1: expected"):
        celeba.prepare(*files, tmp_path / "index.csv")


def test_not_a_zip(tmp_path):
    files = make_celeba(tmp_path, ["000001.jpg"])
    files[0].write_bytes(b"this is not a zip")
    with pytest.raises(DataError, match=r"img\.zip: not a readable zip"):
        celeba.prepare(*files, tmp_path / "index.csv")
