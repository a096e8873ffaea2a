"""On-the-fly augmentation of a batch on the device equals the CPU fused engine on the same draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlnb.augment import Pair, augment
from mlnb.errors import ConfigError
from mlnb.segment.onthefly import OnTheFly, centre_crop, source_size
from mlnb.segment.settings import arm_policy
from tests.augment.augment_helpers import policy as make_policy
from tests.augment.augment_helpers import smooth_image

ALL = ("rotate", "scale", "intensity", "flip", "translate", "slice_shift")


def test_source_patches_leave_room_for_every_transform():
    assert source_size(make_policy(transforms=("flip",)), (8, 32, 32)) == (8, 32, 32)
    assert source_size(make_policy(transforms=("rotate",), rotation_degrees=10.0), (8, 32, 32)) == (8, 38, 38)
    widest = make_policy(transforms=ALL, rotation_degrees=90.0, scale_range=(0.8, 1.2), translation_pixels=2,
                         slice_shift_pixels=1)
    assert source_size(widest, (4, 20, 20)) == (4, 42, 42)  # 20 x sqrt 2 / 0.8 = 35.4 -> 36, + 2 x (2 + 1)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_device_batches_match_the_fused_engine_and_keep_their_labels(device):
    policy = make_policy(transforms=ALL, min_transforms=3, max_transforms=6, rotation_degrees=20.0,
                         slice_shift_pixels=1)
    augmenter = OnTheFly(policy, 3, (6, 24, 24), 5, 0)  # order 3, seed 5, fold 0
    source = augmenter.source
    images = np.stack([smooth_image(source, seed=seed) for seed in range(4)])
    labels = (images > 0.5).astype(np.uint8) + (images > 0.75)
    names, slots = ["a", "b", "a", "c"], [0, 1, 2, 3]
    out_images, out_labels = augmenter(torch.from_numpy(images).to(device), torch.from_numpy(labels).to(device),
                                       names, 7, slots)
    assert out_images.device.type == device
    out_images, out_labels = out_images.cpu(), out_labels.cpu()
    assert out_images.shape == out_labels.shape == (4, 6, 24, 24)
    chains = augmenter.chains(names, 7, slots)
    assert chains == augmenter.chains(names, 7, slots) and chains != augmenter.chains(names, 8, slots)
    for index, chain in enumerate(chains):
        # the CPU engine on the blog's (H, W, depth) layout, cropped the same way
        expected = augment(Pair(np.moveaxis(images[index], 0, 2), np.moveaxis(labels[index], 0, 2), kind="volume"),
                           chain)
        image = centre_crop(torch.from_numpy(np.moveaxis(expected.image, 2, 0))[None], (6, 24, 24))[0].numpy()
        seg = centre_crop(torch.from_numpy(np.moveaxis(expected.seg, 2, 0))[None], (6, 24, 24))[0].numpy()
        assert np.abs(out_images[index].numpy() - image).max() < 0.03
        assert np.mean(out_labels[index].numpy() == seg) > 0.99
        assert set(np.unique(out_labels[index].numpy())) <= set(np.unique(labels[index]))


def test_single_transform_arms_and_bad_orders():
    policy = make_policy()
    assert arm_policy("none", policy) is None and arm_policy("offline", policy) is None
    assert arm_policy("onthefly", policy) is policy
    rotate = arm_policy("rotate", policy)
    assert rotate.transforms == ("rotate",) and rotate.rotation_degrees == policy.rotation_degrees
    with pytest.raises(ConfigError, match="segment arm 'spin': expected one of none, offline, onthefly, rotate"):
        arm_policy("spin", policy)
    with pytest.raises(ConfigError, match="augment.order 5"):
        OnTheFly(policy, 5, (4, 8, 8), 0)
