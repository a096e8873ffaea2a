from __future__ import annotations

import csv
import zipfile

import pytest

from mlnb.data import celeba, celeba_format
from mlnb.errors import ConfigError, DataError

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


def test_images_listed_but_missing_from_the_zip_are_refused(tmp_path):
    """Only zip -> landmarks used to be checked: a zip missing listed images gave a short index, no warning."""
    names = [f"{i:06d}.jpg" for i in range(1, 6)]
    files = make_celeba(tmp_path, names)  # the annotation files list all five ...
    with zipfile.ZipFile(files[0], "w") as archive:  # ... the zip holds three
        for name in names[:3]:
            archive.writestr(f"img_align_celeba/{name}", b"jpeg bytes")
    with pytest.raises(DataError, match=r"img\.zip: 2 images that .*landmarks\.txt lists are not in the zip.*000004"):
        celeba.prepare(*files, tmp_path / "index.csv")
    assert not (tmp_path / "index.csv").exists()


def test_partition_listing_images_not_in_the_zip_is_refused(tmp_path):
    files = make_celeba(tmp_path, ["000001.jpg"], partition_rows=["000001.jpg 0", "000009.jpg 2"])
    with pytest.raises(DataError, match=r"img\.zip: 1 images that .*partition\.txt lists are not in the zip"):
        celeba.prepare(*files, tmp_path / "index.csv")


def test_one_base_name_in_two_folders_is_refused(tmp_path):
    """Landmarks are keyed by base name: the second member used to take the first one's landmarks."""
    files = make_celeba(tmp_path, ["000001.jpg"])
    with zipfile.ZipFile(files[0], "a") as archive:
        archive.writestr("other/000001.jpg", b"another picture")
    with pytest.raises(DataError, match=r"members 'img_align_celeba/000001\.jpg' and 'other/000001\.jpg' share"):
        celeba.prepare(*files, tmp_path / "index.csv")


def test_an_image_listed_twice_is_named(tmp_path):
    row = "000001.jpg 69 109 106 113 77 142 73 152 108 154"
    files = make_celeba(tmp_path, ["000001.jpg"], landmark_rows=[row, row])
    with pytest.raises(DataError, match=r"landmarks\.txt:4: image 000001\.jpg is listed again \(first on line 3\)"):
        celeba.prepare(*files, tmp_path / "index.csv")


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(tmp_path, limit):
    """--limit -1 used to drop the last image silently."""
    files = make_celeba(tmp_path, ["000001.jpg", "000002.jpg"])
    with pytest.raises(ConfigError, match=rf"--limit must be a positive number of images .*got {limit}"):
        celeba.prepare(*files, tmp_path / "index.csv", limit=limit)


def test_missing_annotation_file_is_a_clear_error(tmp_path):
    files = make_celeba(tmp_path, ["000001.jpg"])
    files[1].unlink()
    with pytest.raises(DataError, match=r"landmarks\.txt: cannot read it as text \(FileNotFoundError"):
        celeba.prepare(*files, tmp_path / "index.csv")
