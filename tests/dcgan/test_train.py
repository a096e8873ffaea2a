"""The DCGAN stage trained from Python (no command line), and what its checkpoint fingerprint covers."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest
import torch

from mlnb import cli, settings
from mlnb.dcgan.settings import DcganSettings
from mlnb.dcgan.train import checkpoint_fingerprint, train_dcgan
from mlnb.training.device import DeviceSetup
from mlnb.training.options import RunOptions
from mlnb.training.settings import TrainSettings
from tests.dcgan.test_train_cli import SETTINGS, argv

CPU = DeviceSetup(torch.device("cpu"), bf16=False, channels_last=False)
TRAIN = TrainSettings.from_mapping({})
OUTPUTS = ("summary.json", "generator.pt", "samples.gif", "turing.html", "samples/step_0000005.png")


@pytest.mark.slow  # computes an FID (Inception-v3 at 299 px)
def test_train_dcgan_from_python_writes_what_the_command_writes(inputs, tmp_path):
    assert cli.main(argv(inputs, tmp_path / "command")) == 0
    run = tmp_path / "python"
    options = RunOptions(data=inputs / "faces.npy", out=run / "out", seed=7, checkpoint_dir=run / "checkpoints")
    train = TrainSettings.from_mapping({"device": "cpu", "threads": 1, "log_every": 1})
    summary = train_dcgan("tiny", DcganSettings.from_mapping(SETTINGS), train, options, inputs / "stats.npz")
    assert summary == json.loads((run / "out" / "summary.json").read_text())
    for name in OUTPUTS:
        assert (run / "out" / name).read_bytes() == (tmp_path / "command" / "out" / name).read_bytes(), name


@dataclasses.dataclass(frozen=True)
class WiderSettings(DcganSettings):
    """The dcgan section with one more key, added as a developer would: a schema entry and a field."""

    new_key: int


def fingerprint_with_new_key(monkeypatch, value: int, operational: bool) -> str:
    schema = copy.deepcopy(settings.config_schema())
    schema["properties"]["dcgan"]["properties"]["new_key"] = {"type": "integer", "x-operational": operational}
    monkeypatch.setattr(settings, "config_schema", lambda: schema)
    return checkpoint_fingerprint(WiderSettings.from_mapping({"new_key": value}), TRAIN, 7, CPU, "md5")


def test_a_new_key_changes_the_fingerprint_unless_the_schema_marks_it_operational(monkeypatch):
    before = checkpoint_fingerprint(DcganSettings.from_mapping({}), TRAIN, 7, CPU, "md5")
    defining = {value: fingerprint_with_new_key(monkeypatch, value, operational=False) for value in (1, 2)}
    assert len({before, *defining.values()}) == 3
    operational = {value: fingerprint_with_new_key(monkeypatch, value, operational=True) for value in (1, 2)}
    assert set(operational.values()) == {before}


def test_operational_train_keys_leave_the_fingerprint_and_every_other_key_changes_it():
    def fingerprint_of(dcgan=None, train=None, seed=7, setup=CPU, images_md5="md5"):
        return checkpoint_fingerprint(DcganSettings.from_mapping(dcgan or {}), TrainSettings.from_mapping(train or {}),
                                      seed, setup, images_md5)

    base = fingerprint_of()
    assert fingerprint_of(train={"threads": 7, "checkpoint_every": 3}) == base
    others = [fingerprint_of(dcgan={"gf": 8}), fingerprint_of(dcgan={"fid_checks": 9}),  # evaluation keys too
              fingerprint_of(train={"log_every": 7}), fingerprint_of(seed=8), fingerprint_of(images_md5="other"),
              fingerprint_of(setup=dataclasses.replace(CPU, bf16=True))]
    assert len({base, *others}) == len(others) + 1
