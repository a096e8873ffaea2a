from __future__ import annotations

import argparse

import pytest

from mlnb.errors import ConfigError
from mlnb.settings import validate_section
from mlnb.training.settings import add_train_arguments, train_settings_from_args


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return train_settings_from_args(parser.parse_args(list(argv)))


def test_train_settings_come_from_json_with_flags_on_top_and_schema_defaults_below():
    settings = parse("--train-settings", '{"log_every": 7, "device": "cpu"}', "--threads", "3")
    assert (settings.log_every, settings.device, settings.threads, settings.checkpoint_every) == (7, "cpu", 3, 1000)
    setup = settings.device_setup()
    assert setup.device.type == "cpu" and not setup.bf16 and not setup.channels_last  # CUDA-only formats


def test_bad_train_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"train\.device: 'gpu' does not match"):
        parse("--train-settings", '{"device": "gpu"}')


def test_every_variant_takes_the_schema_defaults():
    cnn = validate_section("cnn", {"variants": {"tiny": {"steps": 5}}})
    assert cnn["variants"]["tiny"] == {"steps": 5, "batch_size": 100, "optimizer": "sgd", "learning_rate": 0.001,
                                       "momentum": 0.0, "weight_decay": 0.0, "schedule": "constant",
                                       "batch_norm": False, "batch_norm_decay": 0.99, "dropout": 0.0,
                                       "label_smoothing": 0.0, "compile": False, "eval_every": 0}
    with pytest.raises(ConfigError, match=r"cnn\.variants\.tiny: 'steps' is a required property"):
        validate_section("cnn", {"variants": {"tiny": {}}})
