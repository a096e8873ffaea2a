from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
import pytest

from mlnb.data import celeba, celeba_format
from mlnb.demo import placement, replicas
from mlnb.faces import align


@pytest.fixture(scope="module")
def celeba_replica(tmp_path_factory):
    out = tmp_path_factory.mktemp("celeba")
    replicas.build("celeba", out, seed=5)
    return out


def test_same_seed_same_bytes(tmp_path, celeba_replica):
    replicas.build("celeba", tmp_path, seed=5)
    for name in celeba_format.FILES.values():
        assert (tmp_path / name).read_bytes() == (celeba_replica / name).read_bytes(), name


def test_other_seed_other_jitter(tmp_path, celeba_replica):
    replicas.build("celeba", tmp_path, seed=6)
    images = celeba_format.FILES["images"]
    assert (tmp_path / images).read_bytes() != (celeba_replica / images).read_bytes()


def test_celeba_replica_passes_the_real_checks(tmp_path, celeba_replica):
    files = {key: celeba_replica / name for key, name in celeba_format.FILES.items()}
    counts = celeba.prepare(files["images"], files["landmarks"], files["partition"], tmp_path / "index.csv")
    assert counts["images"] > 80
    assert counts["train"] > counts["valid"] > 0


def test_images_are_celeba_frames_in_celeba_order(celeba_replica):
    with zipfile.ZipFile(celeba_replica / celeba_format.FILES["images"]) as archive:
        members = archive.namelist()
        first = np.frombuffer(archive.read(members[0]), np.uint8)
    assert members == [f"{celeba_format.IMAGES_FOLDER}/{celeba_format.image_name(n)}"
                       for n in range(1, len(members) + 1)]
    assert cv2.imdecode(first, cv2.IMREAD_COLOR).shape == (celeba_format.FRAME_HEIGHT, celeba_format.FRAME_WIDTH, 3)


def written_landmarks(folder) -> dict[str, np.ndarray]:
    lines = (folder / celeba_format.FILES["landmarks"]).read_text().splitlines()
    assert tuple(lines[1].split()) == celeba_format.LANDMARK_COLUMNS
    return {fields[0]: np.array(fields[1:], dtype=float).reshape(5, 2) for fields in map(str.split, lines[2:])}


def test_landmarks_follow_the_recorded_jitter(celeba_replica):
    record = json.loads((celeba_replica / "replica_record.json").read_text())
    written = written_landmarks(celeba_replica)
    assert record["jitter"]["000001.jpg"]["source"] == "astronaut"
    faces = {name: jitter for name, jitter in record["jitter"].items() if "matrix" in jitter}
    assert len(faces) == len(written) - 2  # all but the two deliberately bad entries
    for name, jitter in faces.items():
        matrix = np.array(jitter["matrix"])
        # The placement and the jitter are similarities: equal scale on both axes, no shear.
        linear = matrix[:, :2]
        assert np.allclose(linear @ linear.T, np.eye(2) * (linear @ linear.T)[0, 0], atol=1e-9)
        np.testing.assert_array_equal(written[name],
                                      np.round(align.apply_affine(matrix, jitter["source_landmarks"])))


def test_the_recorded_jitter_is_the_one_model_and_makes_the_matrix(celeba_replica):
    record = json.loads((celeba_replica / "replica_record.json").read_text())
    for jitter in (entry for entry in record["jitter"].values() if "matrix" in entry):
        assert abs(jitter["rotation_degrees"]) <= placement.MAX_ROTATION_DEGREES
        assert placement.SCALE_RANGE[0] <= jitter["scale"] <= placement.SCALE_RANGE[1]
        assert max(map(abs, jitter["shift"])) <= placement.MAX_SHIFT
        model = placement.Jitter(jitter["rotation_degrees"], jitter["scale"], tuple(jitter["shift"]))
        expected = placement.frame_transform(placement.landmark_placement(np.array(jitter["source_landmarks"])), model)
        np.testing.assert_allclose(jitter["matrix"], expected, atol=1e-9)
