"""FID: the Fréchet distance against closed forms, the resize convention, and the real Inception."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.linalg
import torch

from mlnb.dcgan.fid import FeatureStats, frechet_distance, inception_features, inception_input, legacy_bilinear_matrix
from mlnb.errors import DataError


def stats(mean, covariance):
    return FeatureStats(np.asarray(mean, float), np.asarray(covariance, float), 100)


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 0.25])
    mean_a, mean_b = np.array([0.0, 1.0, 2.0]), np.array([3.0, 1.0, -2.0])
    expected = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(stats(mean_a, np.diag(a)), stats(mean_b, np.diag(b))) == pytest.approx(expected)


def test_frechet_distance_of_general_gaussians_matches_the_textbook_matrix_square_root():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    first, second = x @ x.T + np.eye(6), y @ y.T + np.eye(6)
    shift = np.r_[1.0, 1.0, 0, 0, 0, 0]
    expected = 2.0 + np.trace(first + second - 2 * np.real(scipy.linalg.sqrtm(first @ second)))
    assert frechet_distance(stats(np.zeros(6), first), stats(shift, second)) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(stats(np.ones(6), first), stats(np.ones(6), first)) == pytest.approx(0, abs=1e-9)


def test_few_samples_take_the_low_rank_path_with_the_same_distance():
    rng = np.random.default_rng(4)
    many, few = FeatureStats.of(rng.normal(size=(80, 20))), FeatureStats.of(rng.normal(1, 2, size=(6, 20)))
    assert many.centred is None and few.centred.shape == (6, 20)
    full = dataclasses.replace(few, centred=None)
    for first, second in ((many, few), (few, many), (few, few)):
        exact = frechet_distance(dataclasses.replace(first, centred=None), dataclasses.replace(second, centred=None))
        # abs: the square roots of rounding-error zeros
        assert frechet_distance(first, second) == pytest.approx(exact, rel=1e-6, abs=1e-5)
    assert frechet_distance(full, few) == pytest.approx(0, abs=1e-6)


def test_resize_follows_tf1_bilinear_without_half_pixel_offset():
    # 2 -> 4: output j samples input j * 2 / 4 = 0, 0.5, 1, 1.5 (clamped at the border)
    assert legacy_bilinear_matrix(2, 4).tolist() == [[1, 0], [0.5, 0.5], [0, 1], [0, 1]]
    assert torch.allclose(legacy_bilinear_matrix(7, 299).sum(1), torch.ones(299, dtype=torch.float64))


def test_inception_input_is_three_channel_299_in_tf_range():
    grey = torch.full((2, 1, 28, 28), 255, dtype=torch.uint8)
    grey[1] = 0
    batch = inception_input(grey)
    assert batch.shape == (2, 3, 299, 299)
    assert torch.allclose(batch[0], torch.tensor(255 / 128 - 1)) and torch.all(batch[1] == -1)


def test_inception_input_refuses_float_images():
    with pytest.raises(DataError, match="uint8"):
        inception_input(torch.zeros(1, 3, 8, 8))


def test_stats_need_two_images():
    with pytest.raises(DataError, match="at least 2"):
        FeatureStats.of(np.zeros((1, 5)))


def test_stats_round_trip_and_refuse_other_files(tmp_path):
    original = FeatureStats.of(np.random.default_rng(1).normal(size=(5, 3)))
    original.save(tmp_path / "stats.npz")
    loaded = FeatureStats.load(tmp_path / "stats.npz")
    assert np.array_equal(loaded.covariance, original.covariance) and loaded.count == 5
    np.savez(tmp_path / "other.npz", mean=np.zeros(3))
    with pytest.raises(DataError, match="not an FID statistics file"):
        FeatureStats.load(tmp_path / "other.npz")


@pytest.mark.slow
def test_fid_of_a_set_against_itself_is_zero_and_against_a_shifted_set_clearly_larger():
    rng = np.random.default_rng(2)
    images = torch.from_numpy(rng.integers(0, 160, size=(8, 3, 16, 16), dtype=np.uint8))
    features = inception_features(images)
    assert features.shape == (8, 2048)
    real = FeatureStats.of(features)
    assert frechet_distance(real, real) == pytest.approx(0, abs=1e-3)
    shifted = FeatureStats.of(inception_features(images + 90))
    assert frechet_distance(real, shifted) > 10
