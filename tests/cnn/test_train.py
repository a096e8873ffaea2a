"""The CNN trained from Python with typed values (no command line), and what its checkpoint fingerprint
depends on: every setting but the schema's operational ones."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

import mlnb.settings
from mlnb import cli
from mlnb.cnn.settings import CnnSettings
from mlnb.cnn.train import run_fingerprint, train_cnn
from mlnb.training.device import DeviceSetup
from mlnb.training.options import RunOptions
from mlnb.training.settings import TrainSettings

TRAIN = TrainSettings.from_mapping({"device": "cpu", "log_every": 10, "checkpoint_every": 10})
CPU = DeviceSetup(torch.device("cpu"), bf16=False, channels_last=False)


def quick(**variant) -> CnnSettings:
    return CnnSettings.from_mapping({"variants": {"quick": {"steps": 30, "batch_size": 20, **variant}}})


def test_train_cnn_from_python_writes_what_the_command_writes(tmp_path, mnist_npz):
    options = RunOptions(data=Path(mnist_npz), out=tmp_path / "python", seed=3, checkpoint_dir=tmp_path / "ckpt-1")
    summary = train_cnn("quick", quick(optimizer="adam"), TRAIN, options)
    assert summary == json.loads((tmp_path / "python" / "result.json").read_text())
    assert summary["test_images"] == sum(map(sum, summary["confusion"])) == 50

    argv = ["train-cnn", "--data", mnist_npz, "--variant", "quick", "--seed", "3", "--out", str(tmp_path / "cli"),
            "--checkpoint-dir", str(tmp_path / "ckpt-2"), "--device", "cpu", "--new-variant", "--steps", "30",
            "--batch-size", "20", "--optimizer", "adam", "--log-every", "10", "--checkpoint-every", "10"]
    assert cli.main(argv) == 0
    for name in ("result.json", "model.pt"):
        assert (tmp_path / "python" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()


def fingerprint(settings: CnnSettings | None = None, train: TrainSettings = TRAIN) -> str:
    return run_fingerprint("quick", settings or quick(), train, 0, CPU, "data md5")


def test_the_fingerprint_follows_the_defining_keys_and_ignores_the_operational_ones():
    base = fingerprint()
    assert fingerprint(train=dataclasses.replace(TRAIN, threads=7, checkpoint_every=3)) == base
    assert fingerprint(train=dataclasses.replace(TRAIN, log_every=11)) != base
    assert fingerprint(quick(dropout=0.1)) != base
    assert fingerprint(dataclasses.replace(quick(), eval_batch=7)) != base
    other_variant = {**quick().variants, "other": quick(steps=5).variants["quick"]}
    assert fingerprint(dataclasses.replace(quick(), variants=other_variant)) == base  # not this run's concern


@dataclasses.dataclass(frozen=True)
class TrainWithNewKey(TrainSettings):
    new_key: int = 0


@dataclasses.dataclass(frozen=True)
class CnnWithNewKey(CnnSettings):
    new_key: int = 0


@pytest.mark.parametrize("section", ["train", "cnn"])
def test_a_new_key_changes_the_fingerprint_unless_the_schema_marks_it_operational(section, monkeypatch):
    def with_new_key(value: int) -> str:
        if section == "train":
            return fingerprint(train=TrainWithNewKey(**dataclasses.asdict(TRAIN), new_key=value))
        return fingerprint(CnnWithNewKey(**dataclasses.asdict(quick()), new_key=value))

    assert with_new_key(1) != with_new_key(2)
    schema_marks = mlnb.settings.operational_keys
    monkeypatch.setattr(mlnb.settings, "operational_keys",
                        lambda name: schema_marks(name) | ({"new_key"} if name == section else set()))
    assert with_new_key(1) == with_new_key(2)


def test_a_new_key_in_a_variants_definition_changes_the_fingerprint():
    settings = quick()
    variants = {"quick": {**settings.variants["quick"], "new_key": 1}}
    assert fingerprint(dataclasses.replace(settings, variants=variants)) != fingerprint(settings)
