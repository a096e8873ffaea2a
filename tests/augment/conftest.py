"""Fixtures of the augment tests: synthetic pairs of every kind and package-shipped MRI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from mlnb.augment import Pair
from tests.augment.augment_helpers import make_pair


@pytest.fixture(params=["grey", "rgb", "volume"])
def pair(request) -> Pair:
    return make_pair(request.param)


@pytest.fixture()
def anatomical() -> Path:
    """nibabel's shipped 33x41x25 big-endian int16 volume."""
    return Path(importlib.util.find_spec("nibabel").origin).parent / "tests" / "data" / "anatomical.nii"
