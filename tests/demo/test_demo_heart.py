from __future__ import annotations

import json
import tarfile

from mlnb.demo import replicas


def test_heart_replica_is_an_msd_task(tmp_path):
    replicas.build("heart", tmp_path, seed=5)
    with tarfile.open(tmp_path / "Task02_Heart.tar") as archive:
        names = archive.getnames()
        dataset = json.loads(archive.extractfile("Task02_Heart/dataset.json").read())
    assert "Task02_Heart/imagesTr/la_001.nii.gz" in names and "Task02_Heart/labelsTr/la_004.nii.gz" in names
    assert dataset["numTraining"] == len(dataset["training"]) == 4
    assert "Task02_Heart/imagesTr/._la_001.nii.gz" in names  # the AppleDouble file extraction must skip
