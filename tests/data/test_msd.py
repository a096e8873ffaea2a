from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest

from mlnb.data import msd
from mlnb.errors import DataError
from mlnb.io import file_md5


def save(array, path, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), path)


@pytest.fixture()
def task(tmp_path):
    root = tmp_path / "Task02_Heart"
    rng = np.random.default_rng(1)
    training = []
    for case in ("la_003", "la_004"):
        save(rng.normal(size=(6, 5, 4)).astype(np.float32), root / "imagesTr" / f"{case}.nii.gz")
        save((rng.random((6, 5, 4)) > 0.7).astype(np.uint8), root / "labelsTr" / f"{case}.nii.gz")
        training.append({"image": f"./imagesTr/{case}.nii.gz", "label": f"./labelsTr/{case}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"training": training}))
    return root


def test_index_lists_checked_pairs(task, tmp_path):
    rows = msd.index_task(tmp_path)
    assert [row["case"] for row in rows] == ["la_003", "la_004"]
    assert rows[0]["image"] == str(task / "imagesTr" / "la_003.nii.gz")
    assert rows[0]["label"] == str(task / "labelsTr" / "la_003.nii.gz")
    assert rows[0]["shape"] == "6x5x4" and rows[0]["labels"] == "0 1"
    # checksums, so that the workflow reruns exactly the cases whose volumes changed
    assert rows[1]["image_md5"] == file_md5(task / "imagesTr" / "la_004.nii.gz")
    assert rows[1]["label_md5"] == file_md5(task / "labelsTr" / "la_004.nii.gz")


def test_image_without_label_named(task, tmp_path):
    (task / "labelsTr" / "la_004.nii.gz").unlink()
    with pytest.raises(DataError, match=r"labelsTr/la_004\.nii\.gz: label of case la_004 is missing"):
        msd.index_task(tmp_path)


def test_shape_mismatch_named(task, tmp_path):
    save(np.zeros((6, 5, 3), np.uint8), task / "labelsTr" / "la_003.nii.gz")
    with pytest.raises(DataError, match=r"la_003\.nii\.gz: label shape \(6, 5, 3\) differs"):
        msd.index_task(tmp_path)


def test_non_integer_label_named(task, tmp_path):
    save(np.full((6, 5, 4), 0.5, np.float32), task / "labelsTr" / "la_003.nii.gz")
    with pytest.raises(DataError, match=r"la_003\.nii\.gz: label holds non-integer"):
        msd.index_task(tmp_path)


def test_four_d_image_rejected(task, tmp_path):
    save(np.zeros((6, 5, 4, 2), np.float32), task / "imagesTr" / "la_003.nii.gz")
    with pytest.raises(DataError, match=r"expected a 3-D volume"):
        msd.index_task(tmp_path)


def test_corrupt_nifti_named(task, tmp_path):
    (task / "imagesTr" / "la_004.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(DataError, match=r"imagesTr/la_004\.nii\.gz: cannot read image"):
        msd.index_task(tmp_path)


def test_missing_dataset_json(tmp_path):
    with pytest.raises(DataError, match="no dataset.json"):
        msd.index_task(tmp_path)


def test_prepare_extracts_and_indexes_replica(tmp_path):
    from mlnb.demo import replicas

    replicas.build("heart", tmp_path / "replica", seed=3)
    out = tmp_path / "index.csv"
    rows = msd.prepare(tmp_path / "replica" / "Task02_Heart.tar", tmp_path / "extracted", out)
    assert [row["case"] for row in rows] == ["la_001", "la_002", "la_003", "la_004"]
    written = list(csv.DictReader(open(out)))
    assert [row["case"] for row in written] == ["la_001", "la_002", "la_003", "la_004"]
    assert set(written[0]["labels"].split()) <= {"0", "1", "2", "3"}
    # The AppleDouble file of the archive is not a case and is not extracted as one.
    assert not any(p.name.startswith("._") for p in (tmp_path / "extracted").rglob("*"))
