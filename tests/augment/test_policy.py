"""The random policy: the blog's draws, from seeded generators only."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mlnb.augment import CropToSegmentation, Flip, Intensity, Normalise, Resample, Rotate, Scale, SliceShift, Translate
from mlnb.augment.policy import BLOG_TRANSFORMS, RandomFlip, RandomPolicy, copy_generator
from mlnb.augment.settings import AugmentSettings
from mlnb.errors import ConfigError
from tests.augment.augment_helpers import policy as make_policy

ORDER = [Rotate, Scale, Intensity, Flip, Translate, SliceShift]


def draws(policy, kind="volume", depth=8, copies=200):
    return [policy.draw(copy_generator(7, "la_003", copy), kind, depth) for copy in range(copies)]


def test_same_keys_same_chain_and_other_keys_other_chains():
    policy = make_policy(dims=(32, 32, 8))
    first = policy.draw(copy_generator(7, "la_003", 0), "volume", 8)
    assert policy.draw(copy_generator(7, "la_003", 0), "volume", 8) == first
    others = [policy.draw(copy_generator(*keys), "volume", 8) for keys in ((8, "la_003", 0), (7, "la_004", 0),
                                                                            (7, "la_003", 1))]
    assert all(chain != first for chain in others)


def test_chains_follow_the_blogs_policy():
    chains = draws(make_policy(dims=(32, 32, 8)))
    counts = set()
    for chain in chains:
        assert isinstance(chain[0], Normalise)
        assert chain[-2:] == [CropToSegmentation(5), Resample((32, 32, 8))]
        middle = chain[1:-2]
        kinds = [type(t) for t in middle]
        assert kinds == sorted(set(kinds), key=ORDER.index)  # distinct, in the blog's order
        counts.add(len(middle))
        for transform in middle:
            match transform:
                case Rotate(degrees=d):
                    assert -10 <= d <= 10 and round(d, 2) == d
                case Scale(factor=f):
                    assert 0.9 <= f <= 1.1
                case Intensity(factor=f):
                    assert 0.8 <= f <= 1.2
                case Translate(rows=r, cols=c):
                    assert isinstance(r, int) and -5 <= r <= 5 and -5 <= c <= 5
                case Flip(ud=ud):
                    assert not ud
    assert counts == {1, 2, 3, 4, 5}
    shifts = {t.rows for chain in chains for t in chain if isinstance(t, Translate)}
    assert {-5, 5} <= shifts


def test_rgb_is_not_normalised_and_slice_shift_is_for_volumes_only():
    policy = make_policy(transforms=("rotate", "slice_shift"), min_transforms=2, max_transforms=2)
    for chain in draws(policy, kind="rgb", depth=3, copies=20):
        assert not any(isinstance(t, Normalise | SliceShift) for t in chain)
        assert isinstance(chain[0], Rotate)
    for chain in draws(policy, copies=20):
        shift = chain[2]
        assert isinstance(shift, SliceShift) and len(shift.offsets) == 8
        assert sum(1 for offset in shift.offsets if offset != (0, 0)) <= 4
        assert all(abs(v) <= 3 for offset in shift.offsets for v in offset)
    with pytest.raises(ConfigError, match="none applies to a grey image"):
        make_policy(transforms=("slice_shift",)).draw(np.random.default_rng(0), "grey", 1)


def test_flip_probabilities():
    rng = np.random.default_rng(0)
    assert RandomFlip(1.0, 0.0).draw(rng, 1) == Flip(lr=True, ud=False)
    flips = [RandomFlip().draw(rng, 1).lr for _ in range(400)]
    assert 150 < sum(flips) < 250


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"min_transforms": 3, "max_transforms": 2}, "expected 1 <= min <= max"),
        ({"transforms": ("rotate", "rotate")}, "expected distinct names"),
        ({"scale_range": (1.1, 0.9)}, r"scale_range \[1.1, 0.9\]"),
    ],
)
def test_bad_combinations_are_config_errors(settings, message):
    """What the schema cannot say (one key against another) the policy checks."""
    defaults = AugmentSettings.from_mapping({}).policy()
    with pytest.raises(ConfigError, match=message):
        RandomPolicy(**{**dataclasses.asdict(defaults), **settings})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"transforms": ["rotate", "shear"]}, r"augment\.transforms\[1\]: 'shear' is not one of"),
        ({"intensity_range": [0.0, 1.2]}, r"augment\.intensity_range\[0\]: 0\.0 is less than or equal to"),
        ({"rotation_degrees": -1}, r"augment\.rotation_degrees: -1 is less than the minimum of 0"),
        ({"slice_shift_fraction": 1.5}, r"augment\.slice_shift_fraction: 1\.5 is greater than the maximum"),
        ({"previews": "some"}, r"augment\.previews: 'some' is not one of"),
    ],
)
def test_bad_settings_name_the_key(settings, message):
    with pytest.raises(ConfigError, match=message):
        AugmentSettings.from_mapping(settings)


def test_the_blog_transforms_are_the_default():
    assert make_policy().transforms == BLOG_TRANSFORMS
