from __future__ import annotations

import csv
import json
import re

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
    cases = [f"la_{number:03d}" for number in range(1, 9)]
    assert [row["case"] for row in rows] == cases
    written = list(csv.DictReader(open(out)))
    assert [row["case"] for row in written] == cases
    assert set(written[0]["labels"].split()) == {"0", "1", "2"}
    # The AppleDouble file of the archive is not a case and is not extracted as one.
    assert not any(p.name.startswith("._") for p in (tmp_path / "extracted").rglob("*"))


def _set_training(task, training):
    (task / "dataset.json").write_text(json.dumps({"training": training}))


def test_paths_outside_the_extracted_folder_are_refused(task, tmp_path):
    """dataset.json used to be followed anywhere: the pipeline augmented a host file."""
    host_file = tmp_path.parent / "host.nii.gz"
    save(np.zeros((6, 5, 4), np.float32), host_file)
    for image in (str(host_file), "../../host.nii.gz"):
        _set_training(task, [{"image": image, "label": "./labelsTr/la_003.nii.gz"}])
        with pytest.raises(DataError, match=r"training\[0\]\.image .*host\.nii\.gz' points outside the extracted"):
            msd.index_task(tmp_path)
    _set_training(task, [{"image": "./imagesTr/la_003.nii.gz", "label": "/etc/hostname"}])
    with pytest.raises(DataError, match=r"training\[0\]\.label '/etc/hostname' points outside"):
        msd.index_task(tmp_path)


def test_a_symlink_out_of_the_folder_is_refused(task, tmp_path):
    outside = tmp_path.parent / "outside.nii.gz"
    save(np.zeros((6, 5, 4), np.float32), outside)
    (task / "imagesTr" / "la_003.nii.gz").unlink()
    (task / "imagesTr" / "la_003.nii.gz").symlink_to(outside)
    with pytest.raises(DataError, match=r"training\[0\]\.image .* points outside"):
        msd.index_task(tmp_path)


def test_duplicate_case_names_are_refused_naming_both_entries(task, tmp_path):
    entry = {"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}
    other = {"image": "./imagesTr/la_004.nii.gz", "label": "./labelsTr/la_004.nii.gz"}
    _set_training(task, [entry, other, entry])
    with pytest.raises(DataError, match=r"training\[0\] and training\[2\] are both case 'la_003'"):
        msd.index_task(tmp_path)


def test_unsafe_case_name_is_refused(task, tmp_path):
    save(np.zeros((6, 5, 4), np.float32), task / "imagesTr" / "la 003.nii.gz")
    _set_training(task, [{"image": "./imagesTr/la 003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}])
    with pytest.raises(DataError, match=r"training\[0\]\.image: case name 'la 003' may hold only"):
        msd.index_task(tmp_path)


@pytest.mark.parametrize(("training", "message"), [
    ([{"image": 5, "label": "./labelsTr/la_003.nii.gz"}], r"training\[0\]\.image must be a file path .*got 5"),
    ([{"image": "./imagesTr/la_003.nii.gz"}], r"training\[0\]\.label must be a file path .*got None"),
    (["./imagesTr/la_003.nii.gz"], r"training\[0\] must be an object"),
    ({"image": "x"}, r"'training' must be a list"),
    ([], r"the 'training' list is empty"),
])
def test_malformed_entries_are_named(task, tmp_path, training, message):
    _set_training(task, training)
    with pytest.raises(DataError, match=message):
        msd.index_task(tmp_path)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_truncated_voxel_data_is_refused_at_prepare_time(task, tmp_path, suffix):
    """Only headers used to be read: a cut image passed and failed later in augmentation."""
    path = task / "imagesTr" / f"la_003{suffix}"
    save(np.random.default_rng(2).normal(size=(30, 30, 30)).astype(np.float32), path)  # header intact after the cut
    path.write_bytes(path.read_bytes()[:-1000])
    if suffix == ".nii":
        (task / "imagesTr" / "la_003.nii.gz").unlink()
    _set_training(task, [{"image": f"./imagesTr/la_003{suffix}", "label": "./labelsTr/la_003.nii.gz"}])
    with pytest.raises(DataError, match=rf"la_003{re.escape(suffix)}: image data of case la_003 is truncated"):
        msd.index_task(tmp_path)


def test_nan_voxels_are_refused(task, tmp_path):
    volume = np.zeros((6, 5, 4), np.float32)
    volume[1, 2, 3] = volume[0, 0, 0] = np.nan
    save(volume, task / "imagesTr" / "la_004.nii.gz")
    with pytest.raises(DataError, match=r"la_004\.nii\.gz: image of case la_004 holds 2 NaN or infinite voxels"):
        msd.index_task(tmp_path)
