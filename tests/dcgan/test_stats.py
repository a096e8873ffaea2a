"""The real images' FID statistics, computed from Python (the stage function behind ``mlnb fid-stats``)."""

from __future__ import annotations

import numpy as np
import pytest

from mlnb.dcgan.fid import FeatureStats
from mlnb.dcgan.settings import DcganSettings
from mlnb.dcgan.stats import real_subset, write_real_stats
from mlnb.training.settings import TrainSettings


def test_the_real_subset_is_all_images_or_a_seeded_sorted_choice():
    assert real_subset(5, None, 0, "mnist").tolist() == [0, 1, 2, 3, 4]
    assert real_subset(5, 9, 0, "mnist").tolist() == [0, 1, 2, 3, 4]
    chosen = real_subset(100, 10, 0, "mnist")
    assert len(set(chosen)) == 10 and (np.diff(chosen) > 0).all()
    assert (chosen == real_subset(100, 10, 0, "mnist")).all() and (chosen != real_subset(100, 10, 1, "mnist")).any()


@pytest.mark.slow  # Inception-v3 at 299 px
def test_write_real_stats_writes_the_statistics_of_the_chosen_subset(tmp_path):
    faces = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "faces.npy", faces)
    train = TrainSettings.from_mapping({"device": "cpu", "threads": 1})
    stats = write_real_stats(tmp_path / "faces.npy", tmp_path / "stats.npz",
                             DcganSettings.from_mapping({"fid_real_samples": 4}), train, seed=3, dataset="faces")
    loaded = FeatureStats.load(tmp_path / "stats.npz")
    assert stats.count == loaded.count == 4 and np.array_equal(stats.mean, loaded.mean)
