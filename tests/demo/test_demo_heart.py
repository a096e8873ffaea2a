from __future__ import annotations

import gzip
import json
import tarfile

import nibabel as nib
import numpy as np

from mlnb.demo import heart, replicas


def read_case(archive: tarfile.TarFile, folder: str, case: str) -> nib.Nifti1Image:
    member = archive.extractfile(f"Task02_Heart/{folder}/{case}.nii.gz")
    return nib.Nifti1Image.from_bytes(gzip.decompress(member.read()))


def test_heart_replica_is_an_msd_task(tmp_path):
    replicas.build("heart", tmp_path, seed=5)
    with tarfile.open(tmp_path / "Task02_Heart.tar") as archive:
        names = archive.getnames()
        dataset = json.loads(archive.extractfile("Task02_Heart/dataset.json").read())
    assert "Task02_Heart/imagesTr/la_001.nii.gz" in names and "Task02_Heart/labelsTr/la_008.nii.gz" in names
    assert dataset["numTraining"] == len(dataset["training"]) == heart.CASES == 8
    assert "Task02_Heart/imagesTr/._la_001.nii.gz" in names  # the AppleDouble file extraction must skip


def test_every_case_is_jittered_as_recorded_and_holds_every_label(tmp_path):
    record = replicas.build("heart", tmp_path, seed=5)
    jitters = record["cases"]
    assert sorted(jitters) == [f"la_{number:03d}" for number in range(1, 9)]
    with tarfile.open(tmp_path / "Task02_Heart.tar") as archive:
        labels = json.loads(archive.extractfile("Task02_Heart/dataset.json").read())["labels"]
        for case, jitter in jitters.items():
            image, label = read_case(archive, "imagesTr", case), read_case(archive, "labelsTr", case)
            assert image.shape == label.shape == tuple(jitter["crop"])
            assert np.allclose(image.affine, label.affine)
            # labels 0..L-1 with no gaps, every one in every case
            assert np.unique(np.asarray(label.dataobj)).tolist() == list(range(len(labels))) == [0, 1, 2]
            assert abs(jitter["rotation_degrees"]) <= heart.MAX_ROTATION_DEGREES
            sizes = zip(jitter["crop"], heart.FIELD_OF_VIEW, strict=True)
            assert all(low <= size <= high for size, (low, high) in sizes)
            assert heart.GAIN_RANGE[0] <= jitter["gain"] <= heart.GAIN_RANGE[1]
            assert heart.GAMMA_RANGE[0] <= jitter["gamma"] <= heart.GAMMA_RANGE[1]
    # every case its own pose, field of view and contrast
    for key in ("rotation_degrees", "crop", "gain", "gamma"):
        assert len({json.dumps(jitter[key]) for jitter in jitters.values()}) == len(jitters), key


def test_the_seed_fixes_the_replica(tmp_path):
    first, second, other = (replicas.build("heart", tmp_path / name, seed=seed)
                            for name, seed in (("a", 5), ("b", 5), ("c", 6)))
    assert first == second and first["cases"] != other["cases"]
    assert (tmp_path / "a" / "Task02_Heart.tar").read_bytes() == (tmp_path / "b" / "Task02_Heart.tar").read_bytes()


def test_a_jitter_turns_crops_and_scales_the_template():
    image = np.zeros((20, 30, 10), np.float32)
    labels = np.zeros(image.shape, np.uint8)
    image[2:6, 3:9, :], labels[2:6, 3:9, :] = 0.5, 1
    jitter = heart.CaseJitter(rotation_degrees=0.0, flip_x=True, corner=(1, 2, 3), crop=(10, 12, 4), gain=1.1,
                              gamma=1.0)
    volume, label = jitter.apply(image, labels)
    assert volume.shape == label.shape == (10, 12, 4) and volume.dtype == np.int16
    expected = labels[1:11, 2:14, 3:7][::-1]
    np.testing.assert_array_equal(label, expected)
    np.testing.assert_array_equal(volume, np.where(expected == 1, 550, 0))
    square, square_labels = image[:, :20], labels[:, :20]
    _, turned = heart.CaseJitter(90.0, False, (0, 0, 0), (20, 20, 10), 1.0, 1.0).apply(square, square_labels)
    assert any(np.array_equal(turned, np.rot90(square_labels, turn, axes=(0, 1))) for turn in (1, -1))  # in-plane
