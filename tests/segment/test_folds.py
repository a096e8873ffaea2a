"""Folds: fixed by the seed, disjoint, covering every case; impossible splits refused."""

from __future__ import annotations

import pytest

from mlnb.errors import ConfigError, DataError
from mlnb.segment.folds import assign_folds, read_folds, split, write_folds

CASES = [f"la_{number:03d}" for number in range(1, 21)]


def test_folds_are_disjoint_cover_every_case_and_depend_only_on_the_seed(tmp_path):
    folds = assign_folds(CASES, 5, seed=7)
    assert sorted(case for part in folds for case in part) == sorted(CASES)
    assert [len(part) for part in folds] == [4] * 5
    assert assign_folds(list(reversed(CASES)), 5, seed=7) == folds
    assert assign_folds(CASES, 5, seed=8) != folds
    assert write_folds(tmp_path / "folds.json", CASES, 5, 7) == read_folds(tmp_path / "folds.json") == folds
    training, held_out = split(folds, 2)
    assert held_out == folds[2] and not set(training) & set(held_out) and len(training) == 16
    uneven = assign_folds(CASES[:7], 3, seed=1)
    assert sorted(map(len, uneven)) == [2, 2, 3]


def test_impossible_folds_are_refused():
    with pytest.raises(ConfigError, match="segment.folds 5: needs 2 <= folds <= the 4 labelled cases"):
        assign_folds(CASES[:4], 5, seed=0)
    with pytest.raises(DataError, match="cases listed twice"):
        assign_folds(["a", "a", "b"], 2, seed=0)
    with pytest.raises(ConfigError, match="fold 5 does not exist"):
        split(assign_folds(CASES, 5, 0), 5)
