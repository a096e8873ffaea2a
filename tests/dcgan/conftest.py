"""Inputs of the DCGAN's end-to-end tests: tiny synthetic faces and made-up real statistics."""

from __future__ import annotations

import numpy as np
import pytest

from mlnb.dcgan.fid import FeatureStats


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """``faces.npy`` (32 faces of 16 px, 4 px blocks of colour) and ``stats.npz`` beside it."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    faces = np.repeat(np.repeat(rng.integers(0, 256, (32, 4, 4, 3), dtype=np.uint8), 4, axis=1), 4, axis=2)
    np.save(folder / "faces.npy", faces)
    FeatureStats.of(rng.normal(size=(6, 2048))).save(folder / "stats.npz")
    return folder
