"""`mlnb augment` and `mlnb gather-augment`: files, byte-identical reruns and replays, clean errors."""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil

import nibabel as nib
import numpy as np
import pytest

from mlnb import cli
from mlnb.augment.copies import augment_image
from mlnb.augment.gather import gather_augment
from mlnb.augment.settings import AugmentSettings
from mlnb.io import file_md5
from tests.augment.augment_helpers import write_nifti_pair, write_picture_pair


def files_of(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture()
def nifti_pair(anatomical, tmp_path):
    image = tmp_path / "anatomical.nii"
    shutil.copy(anatomical, image)
    return image, write_nifti_pair(anatomical, tmp_path)


def augment(image, seg, out, *extra):
    argv = ["augment", str(image), "--out", str(out), "--copies", "3", "--seed", "11", *extra]
    return cli.main(argv + (["--seg", str(seg)] if seg else []))


def test_volumes_give_every_file_and_the_same_seed_gives_the_same_bytes(nifti_pair, tmp_path):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "a", "--dims", "24", "24", "6") == 0
    assert augment(image, seg, tmp_path / "b", "--dims", "24", "24", "6") == 0
    first = files_of(tmp_path / "a")
    assert sorted(first) == sorted(f"anatomical_aug{k}{suffix}" for k in range(3)
                                   for suffix in (".nii", "_seg.nii.gz", ".json", "_preview.png"))
    assert first == files_of(tmp_path / "b")
    assert nib.load(tmp_path / "a" / "anatomical_aug0_seg.nii.gz").shape == (24, 24, 6)

    record = json.loads(first["anatomical_aug1.json"])
    assert record["seed"] == {"seed": 11, "keys": ["augment", "anatomical", 1]}
    assert record["mode"] == "fused" and record["order"] == 3 and record["dims"] == [24, 24, 6]
    assert record["inputs"]["image"]["md5"] and record["inputs"]["seg"]["path"] == str(seg)
    names = [entry["name"] for entry in record["transforms"]]
    assert names[0] == "normalise" and names[-2:] == ["crop_to_segmentation", "resample"]

    assert augment(image, seg, tmp_path / "c", "--dims", "24", "24", "6", "--seed", "12") == 0
    assert files_of(tmp_path / "c")["anatomical_aug0.nii"] != first["anatomical_aug0.nii"]


def test_augment_image_from_python_writes_what_the_command_writes(nifti_pair, tmp_path):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "command", "--dims", "24", "24", "6") == 0
    settings = AugmentSettings.from_mapping({"copies": 3, "dims": [24, 24, 6]})
    records = augment_image(image, seg, tmp_path / "python", settings, seed=11)
    assert [record["copy"] for record in records] == [0, 1, 2]
    assert files_of(tmp_path / "python") == files_of(tmp_path / "command")


def test_the_augment_run_logs_the_flags_as_given(nifti_pair, tmp_path, mlflow_uri):
    import mlflow

    image, seg = nifti_pair
    out = tmp_path / "a"
    assert augment(image, seg, out, "--settings", '{"dims": [20, 20]}', "--order", "1",
                   "--tracking-uri", mlflow_uri, "--experiment", "tests") == 0
    client = mlflow.MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert run.info.run_name == "augment" and run.data.metrics["copies"] == 3
    assert run.data.params == {
        "image": str(image), "seg": str(seg), "out": str(out), "seed": "11", "item": "None", "replay": "None",
        "force": "False", "settings": '{"dims": [20, 20]}', "augment.copies": "3", "augment.order": "1",
        "input_md5.image": file_md5(image), "input_md5.seg": file_md5(seg)}


@pytest.mark.parametrize("mode", ["fused", "sequential"])
def test_a_record_replays_its_copy_byte_for_byte(nifti_pair, tmp_path, mode):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "a", "--mode", mode, "--dims", "20", "20") == 0
    for copy in range(3):
        assert cli.main(["augment", "--replay", str(tmp_path / "a" / f"anatomical_aug{copy}.json"),
                         "--out", str(tmp_path / "replayed")]) == 0
    assert files_of(tmp_path / "replayed") == files_of(tmp_path / "a")


def test_replay_refuses_changed_inputs(nifti_pair, tmp_path, caplog):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "a") == 0
    nib.save(nib.Nifti1Image(np.zeros((33, 41, 25), np.uint8), np.eye(4)), seg)
    with caplog.at_level(logging.ERROR):
        assert cli.main(["augment", "--replay", str(tmp_path / "a" / "anatomical_aug0.json")]) == 2
    assert f"{seg}: the seg changed since" in caplog.text


@pytest.mark.parametrize("rgb", [True, False])
def test_pictures_and_the_sequential_mode(tmp_path, rgb):
    image, seg = write_picture_pair(tmp_path, rgb=rgb)
    assert augment(image, seg, tmp_path / "out", "--dims", "32", "32", "--mode", "sequential") == 0
    names = set(files_of(tmp_path / "out"))
    assert {"astronaut_aug2.png", "astronaut_aug2_seg.png", "astronaut_aug2.json"} <= names
    record = json.loads((tmp_path / "out" / "astronaut_aug0.json").read_text())
    assert record["kind"] == ("rgb" if rgb else "grey") and record["mode"] == "sequential"
    assert (record["transforms"][0]["name"] == "normalise") is not rgb


def test_an_image_without_segmentation(tmp_path):
    image, _ = write_picture_pair(tmp_path)
    assert augment(image, None, tmp_path / "out", "--copies", "1") == 0
    record = json.loads((tmp_path / "out" / "astronaut_aug0.json").read_text())
    assert record["inputs"]["seg"] is None and record["outputs"]["seg"] is None


def test_an_empty_segmentation_is_noted(nifti_pair, tmp_path):
    image, seg = nifti_pair
    nib.save(nib.Nifti1Image(np.zeros((33, 41, 25), np.uint8), np.eye(4)), seg)
    assert augment(image, seg, tmp_path / "out", "--copies", "1") == 0
    record = json.loads((tmp_path / "out" / "anatomical_aug0.json").read_text())
    assert record["notes"] == ["empty segmentation: centre crop instead of a crop around it"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dims", "32", "32", "4"], "has a slice count but this is a 2-D rgb image"),
        (["--copies", "0"], r"command line: augment\.copies: 0 is less than the minimum of 1"),
        (["--previews", "some"], r"invalid choice: 'some'"),
        (["--scale-range", "1.2", "0.8"], r"scale_range \[1.2, 0.8\]"),
        (["--min-transforms", "4", "--max-transforms", "2"], "min_transforms 4"),
    ],
)
def test_bad_arguments_are_one_clean_error(tmp_path, caplog, capsys, argv, message):
    image, seg = write_picture_pair(tmp_path)
    with caplog.at_level(logging.ERROR):
        try:
            code = augment(image, seg, tmp_path / "out", *argv)
        except SystemExit as stop:  # argparse's own errors (choices)
            code = stop.code
    assert code == 2
    assert re.search(message, caplog.text + capsys.readouterr().err)
    assert not list(tmp_path.rglob("*.part*"))


def test_mismatched_files_name_both(nifti_pair, tmp_path, caplog):
    image, _ = nifti_pair
    _, seg = write_picture_pair(tmp_path)
    with caplog.at_level(logging.ERROR):
        assert augment(image, seg, tmp_path / "out") == 2
    assert f"{seg}: segmentation shape (64, 64) differs from the shape (33, 41, 25) of its image {image}" in caplog.text


def test_gather_writes_a_manifest(nifti_pair, tmp_path, caplog):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "a") == 0
    records = sorted((tmp_path / "a").glob("*.json"))
    manifest = tmp_path / "manifest.csv"
    assert cli.main(["gather-augment", *map(str, records), "--manifest", str(manifest)]) == 0
    rows = list(csv.DictReader(manifest.open()))
    assert [(row["item"], row["copy"]) for row in rows] == [("anatomical", str(k)) for k in range(3)]
    assert all(row["transforms"].startswith("normalise()") for row in rows)
    assert rows[0]["seg"] == str(tmp_path / "a" / "anatomical_aug0_seg.nii.gz")

    (tmp_path / "a" / "anatomical_aug1_seg.nii.gz").unlink()
    with caplog.at_level(logging.ERROR):
        assert cli.main(["gather-augment", *map(str, records), "--manifest", str(manifest)]) == 2
    assert "anatomical_aug1.json: its seg output" in caplog.text


def test_gather_augment_from_python_returns_the_manifest_rows(nifti_pair, tmp_path):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "a") == 0
    manifest = tmp_path / "manifest.csv"
    rows = gather_augment(sorted((tmp_path / "a").glob("*.json")), manifest)
    assert [(row["item"], row["copy"]) for row in rows] == [("anatomical", str(k)) for k in range(3)]
    with manifest.open(newline="") as handle:
        assert list(csv.DictReader(handle)) == rows


def test_gather_logs_previews_and_the_manifest_to_mlflow(nifti_pair, tmp_path):
    import mlflow

    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "a", "--copies", "2") == 0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["init-tracking", "--tracking-uri", uri, "--experiment", "tests",
                     "--out", str(tmp_path / "experiment.json")]) == 0
    records = sorted(str(path) for path in (tmp_path / "a").glob("*.json"))
    argv = ["gather-augment", *records, "--manifest", str(tmp_path / "manifest.csv"),
            "--tracking-uri", uri, "--experiment", "tests", "--run-name", "augment-heart"]
    assert cli.main(argv) == 0
    client = mlflow.MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("tests").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.data.metrics["copies"] == 2
    logged = {artifact.path for artifact in client.list_artifacts(run.info.run_id)}
    assert "manifest.csv" in logged
    assert [a.path for a in client.list_artifacts(run.info.run_id, "previews")] == ["previews/anatomical.png"]


def test_settings_come_from_json_or_a_config_file_and_flags_override(nifti_pair, tmp_path):
    import cv2
    import yaml

    image, seg = nifti_pair
    settings = json.dumps({"copies": 2, "dims": [20, 20], "mode": "sequential", "threads": 2})
    assert augment(image, seg, tmp_path / "json", "--settings", settings) == 0  # --copies 3 overrides
    assert cv2.getNumThreads() == 2
    record = json.loads((tmp_path / "json" / "anatomical_aug2.json").read_text())
    assert (record["mode"], record["dims"]) == ("sequential", [20, 20])
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"seed": 1, "augment": {"dims": [20, 20], "mode": "sequential"}}))
    assert augment(image, seg, tmp_path / "file", "--settings", str(config), "--threads", "1") == 0
    assert cv2.getNumThreads() == 1
    assert files_of(tmp_path / "file") == files_of(tmp_path / "json")


@pytest.mark.parametrize(("previews", "drawn"), [("all", [0, 1, 2]), ("first", [0]), ("none", [])])
def test_previews_setting(nifti_pair, tmp_path, previews, drawn):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "out", "--previews", previews) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*_preview.png")) == [
        f"anatomical_aug{k}_preview.png" for k in drawn]
    records = [json.loads((tmp_path / "out" / f"anatomical_aug{k}.json").read_text()) for k in range(3)]
    assert [record["outputs"]["preview"] is not None for record in records] == [k in drawn for k in range(3)]


def test_fewer_copies_or_previews_remove_only_this_commands_old_files(nifti_pair, tmp_path):
    image, seg = nifti_pair
    out = tmp_path / "out"
    assert augment(image, seg, out, "--copies", "4") == 0
    mine = out / "anatomical_aug7.nii"  # a user's file that looks like ours, with no record of ours
    mine.write_bytes(b"the user's")
    (out / "anatomical_aug5.json").write_text('{"format": "something else"}')
    assert augment(image, seg, out, "--copies", "2", "--previews", "first") == 0
    expected = {f"anatomical_aug{k}{suffix}" for k in range(2) for suffix in (".nii", "_seg.nii.gz", ".json")}
    expected |= {"anatomical_aug0_preview.png", "anatomical_aug7.nii", "anatomical_aug5.json"}
    assert set(files_of(out)) == expected
    assert mine.read_bytes() == b"the user's"


def test_a_replay_never_overwrites_unless_forced(nifti_pair, tmp_path, caplog):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "a") == 0
    record = tmp_path / "a" / "anatomical_aug0.json"
    before = files_of(tmp_path / "a")
    edited = json.loads(record.read_text())
    edited["transforms"][1:1] = [{"name": "rotate", "degrees": 30.0}]
    record.write_text(json.dumps(edited))
    with caplog.at_level(logging.ERROR):
        assert cli.main(["augment", "--replay", str(record)]) == 2  # beside the record: its own files
    assert "anatomical_aug0.nii: exists; replay never overwrites" in caplog.text
    assert files_of(tmp_path / "a") == {**before, "anatomical_aug0.json": record.read_bytes()}
    assert cli.main(["augment", "--replay", str(record), "--force"]) == 0
    assert files_of(tmp_path / "a")["anatomical_aug0.nii"] != before["anatomical_aug0.nii"]


@pytest.mark.parametrize("name", ["../escaped.nii", "/tmp/absolute.nii", "sub/dir.nii", "..", ""])
def test_a_replay_writes_only_plain_names_inside_its_folder(nifti_pair, tmp_path, caplog, name):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "a") == 0
    record = json.loads((tmp_path / "a" / "anatomical_aug0.json").read_text())
    record["outputs"]["image"] = name
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(record))
    with caplog.at_level(logging.ERROR):
        assert cli.main(["augment", "--replay", str(edited), "--out", str(tmp_path / "replayed")]) == 2
    assert f"outputs.image {name!r} is not a plain file name" in caplog.text
    assert not (tmp_path / "replayed").exists() and not (tmp_path / "escaped.nii").exists()


@pytest.mark.parametrize("broken", [{"inputs": None}, {"transforms": "rotate"}, {"copy": "one"}])
def test_a_malformed_record_is_one_clean_error(nifti_pair, tmp_path, caplog, broken):
    image, seg = nifti_pair
    assert augment(image, seg, tmp_path / "a") == 0
    record = json.loads((tmp_path / "a" / "anatomical_aug0.json").read_text())
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps({**record, **broken}))
    with caplog.at_level(logging.ERROR):
        assert cli.main(["augment", "--replay", str(edited), "--out", str(tmp_path / "replayed")]) == 2
    assert f"{edited}: " in caplog.text and "Traceback" not in caplog.text


def test_a_job_that_cannot_fit_in_memory_is_refused_before_it_starts(nifti_pair, tmp_path, caplog, monkeypatch):
    from mlnb.augment import memory

    image, seg = nifti_pair
    monkeypatch.setattr(memory, "available_bytes", lambda: 2 << 30)
    with caplog.at_level(logging.ERROR):
        assert augment(image, seg, tmp_path / "out", "--dims", "4096", "4096", "512") == 2
    assert re.search(rf"{re.escape(str(image))}: augmenting 33x41x25 to 4096x4096x512 \(fused\) needs about "
                     r"1\d\d\.\d GiB, but only 2\.0 GiB is available", caplog.text)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extension", [".nii", ".png"])
def test_copies_written_behind_the_engine_are_the_same_bytes(nifti_pair, tmp_path, caplog, extension):
    """With two threads each copy is written while the next is computed: the same files, the phases logged."""
    image, seg = nifti_pair if extension == ".nii" else write_picture_pair(tmp_path)
    caplog.set_level(logging.INFO, logger="mlnb.augment.copies")
    for threads in ("1", "2"):
        assert augment(image, seg, tmp_path / threads, "--copies", "4", "--threads", threads) == 0
    assert files_of(tmp_path / "2") == files_of(tmp_path / "1")
    logged = [record for record in caplog.records if hasattr(record, "phase_seconds")]
    assert [", written behind" in record.getMessage() for record in logged] == [False, True]
    for record in logged:
        assert list(record.phase_seconds) == ["read", "engine", "write", "preview", "record"]
        assert all(seconds > 0 for seconds in record.phase_seconds.values())


def test_a_copy_that_cannot_be_written_behind_is_one_clean_error(nifti_pair, tmp_path, caplog):
    image, seg = nifti_pair
    (tmp_path / "out" / "anatomical_aug1_seg.nii.gz").mkdir(parents=True)
    assert augment(image, seg, tmp_path / "out", "--threads", "2") == 2
    assert "anatomical_aug1_seg.nii.gz: is a folder" in caplog.text
    assert not (tmp_path / "out" / "anatomical_aug2.json").exists()
