"""Training one (arm, fold): augmentation on the fly reaches the network, resume equals an uninterrupted run,
and the arms that cannot run are refused."""

from __future__ import annotations

import json

import mlflow
import pytest
import torch

from mlnb import cli
from mlnb.augment.settings import AugmentSettings
from mlnb.errors import ConfigError
from mlnb.segment import folds
from mlnb.segment.preprocess import copy_sources, heart_sources, write_pack
from mlnb.segment.settings import SegmentSettings
from mlnb.segment.train import train_fold
from mlnb.training.checkpoint import Checkpointer
from mlnb.training.options import RunOptions
from mlnb.training.settings import TrainSettings
from tests.segment.cases import write_set

SMALL = {"batch_size": 4, "patch_size": [8, 16, 16], "base_width": 8, "depth": 3, "learning_rate": 0.003,
         "validation_every": 50, "validation_patches": 4, "folds": 2}
#: the policy that covers the held-out pose: any turn, and mirror images
TURNS = AugmentSettings.from_mapping({"transforms": ["rotate", "flip"], "rotation_degrees": 180.0,
                                     "min_transforms": 2, "max_transforms": 2, "order": 1})
TRAIN = TrainSettings.from_mapping({"device": "cpu", "threads": 1, "log_every": 5, "checkpoint_every": 1000})


@pytest.fixture()
def dataset(tmp_path):
    """Five cases, case_04 transposed, in a pack; fold 0 holds out case_04 alone."""
    index = write_set(tmp_path, 5, transposed=("case_04",))
    write_pack(heart_sources(index), tmp_path / "pack")
    folds_file = tmp_path / "folds.json"
    folds_file.write_text(json.dumps({"format": folds.FORMAT, "seed": 0,
                                      "folds": [["case_04"], ["case_00", "case_01", "case_02", "case_03"]]}))
    return tmp_path, folds_file


def run(root, folds_file, arm, steps, name=None, train=TRAIN, copies=None):
    settings = SegmentSettings.from_mapping({**SMALL, "steps": steps})
    options = RunOptions(data=root / "pack", out=root / (name or arm), seed=3,
                         checkpoint_dir=root / "checkpoints" / (name or arm))
    return train_fold(arm, 0, settings, TURNS, train, options, folds_file, copies)


def test_augmentation_on_the_fly_segments_a_pose_the_training_cases_never_show(dataset):
    root, folds_file = dataset
    plain, turned = (run(root, folds_file, arm, steps=200) for arm in ("none", "onthefly"))
    assert plain["test_cases"] == turned["test_cases"] == ["case_04"]
    assert turned["dice"] > plain["dice"] + 0.3, (plain["dice"], turned["dice"])
    assert turned["hd95"] < plain["hd95"]
    assert (root / "onthefly" / "predictions" / "case_04.nii.gz").is_file()
    assert (root / "onthefly" / "previews" / "case_04.png").is_file()


def test_a_resumed_run_ends_as_an_uninterrupted_one(dataset, monkeypatch):
    root, folds_file = dataset
    train = TrainSettings.from_mapping({"device": "cpu", "threads": 1, "log_every": 2, "checkpoint_every": 4})
    whole = run(root, folds_file, "onthefly", steps=10, name="whole", train=train)
    save = Checkpointer.save

    def save_then_crash(self, step, *args, **kwargs):
        save(self, step, *args, **kwargs)
        raise RuntimeError(f"crashed after the checkpoint of step {step}")

    monkeypatch.setattr(Checkpointer, "save", save_then_crash)
    with pytest.raises(RuntimeError, match="step 4"):
        run(root, folds_file, "onthefly", steps=10, name="stopped", train=train)
    monkeypatch.setattr(Checkpointer, "save", save)
    resumed = run(root, folds_file, "onthefly", steps=10, name="stopped", train=train)
    assert resumed["last_metrics"] == whole["last_metrics"] and resumed["cases"]["case_04"]["dice"] == \
        whole["cases"]["case_04"]["dice"]
    ours, theirs = (torch.load(root / name / "model.pt", weights_only=True) for name in ("stopped", "whole"))
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)


def test_offline_trains_on_the_copies_of_its_training_cases_only(dataset):
    root, folds_file = dataset
    manifest = root / "manifest.csv"
    manifest.write_text("item,copy,image,seg\n" + "".join(
        f"{source.case},0,{source.image},{source.label}\n" for source in heart_sources(root / "index.csv")))
    write_pack(copy_sources(manifest), root / "copies")
    with pytest.raises(ConfigError, match="segment arm offline trains on the augment stage's copies: give --copies"):
        run(root, folds_file, "offline", steps=2)
    metrics = run(root, folds_file, "offline", steps=2, copies=root / "copies")
    assert metrics["train_cases"] == [f"case_0{n}" for n in range(4)] + [f"case_0{n}_aug0" for n in range(4)]


def test_the_command_logs_one_run_per_arm_and_fold_and_refuses_unknown_arms(dataset, mlflow_uri, caplog):
    root, folds_file = dataset
    argv = ["train-segment", "--data", str(root / "pack"), "--folds-file", str(folds_file), "--fold", "0",
            "--seed", "3", "--checkpoint-dir", str(root / "checkpoints" / "cli"), "--settings", json.dumps(SMALL),
            "--steps", "4", "--validation-every", "2", "--augment-settings", json.dumps({"order": 1}),
            "--device", "cpu", "--threads", "1", "--log-every", "1"]
    assert cli.main([*argv, "--arm", "spin", "--out", str(root / "spin")]) == 2
    assert "segment arm 'spin': expected one of none, offline, onthefly" in caplog.text
    assert cli.main([*argv, "--arm", "rotate", "--out", str(root / "cli"), "--tracking-uri", mlflow_uri,
                     "--experiment", "tests"]) == 0
    client = mlflow.MlflowClient(mlflow_uri)
    (found,) = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert found.data.tags["mlflow.runName"] == "segment-rotate-fold0"
    assert {"loss", "train_dice", "validation_dice", "test_dice", "test_dice.case_04", "test_hd95"} <= \
        set(found.data.metrics)
    assert [m.step for m in client.get_metric_history(found.info.run_id, "validation_dice")] == [2, 4]
    assert json.loads((root / "cli" / "metrics.json").read_text())["arm"] == "rotate"
