"""The batched torch path: the fused path's geometry on (N, depth, H, W) tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlnb.augment import (
    CropToSegmentation,
    Flip,
    Intensity,
    Normalise,
    Resample,
    Rotate,
    Scale,
    SliceShift,
    Translate,
    augment,
)
from mlnb.augment.torch_batch import augment_batch, default_device, random_chains
from mlnb.errors import ConfigError
from tests.augment.augment_helpers import make_pair
from tests.augment.augment_helpers import policy as make_policy

CHAINS = [
    [Rotate(7.0)],
    [Normalise(), Rotate(-6.3), Scale(1.07), Intensity(1.1), Flip(lr=True), Translate(3, -4)],
    [Scale(0.92), Resample((30, 28, 3))],
    [SliceShift(((1, 2), (0, 0), (-3, 1), (0, 0), (2, 2))), Resample((30, 28, 3))],
]


def as_batch(pairs, device="cpu"):
    images = torch.stack([torch.from_numpy(np.moveaxis(p.image, 2, 0).copy()) for p in pairs]).to(device)
    segs = torch.stack([torch.from_numpy(np.moveaxis(p.seg, 2, 0).copy()) for p in pairs]).to(device)
    return images, segs


def check_against_fused(chains, device):
    pairs = [make_pair("volume", seed=seed) for seed in range(len(chains))]
    images, segs = as_batch(pairs, device)
    out_images, out_segs = augment_batch(images, segs, chains)
    assert out_images.device.type == torch.device(device).type and out_segs.dtype == torch.uint8
    for index, (pair, chain) in enumerate(zip(pairs, chains, strict=True)):
        expected = augment(pair, chain)
        image = np.moveaxis(out_images[index].cpu().numpy(), 0, 2)
        seg = np.moveaxis(out_segs[index].cpu().numpy(), 0, 2)
        # Same cubic kernel as OpenCV; OpenCV rounds positions to 1/32 pixel.
        assert np.abs(image - expected.image).max() < 0.02
        assert np.mean(seg == expected.seg) > 0.99
        assert set(np.unique(seg)) <= set(np.unique(pair.seg))


@pytest.mark.parametrize("chains", [CHAINS[:2], CHAINS[2:]])
def test_batches_match_the_fused_path(chains):
    check_against_fused(chains, "cpu")


@pytest.mark.gpu
def test_batches_match_the_fused_path_on_the_gpu():
    check_against_fused(CHAINS[:2], "cuda")
    check_against_fused(CHAINS[2:], "cuda")


def test_identity_and_rgb_batches():
    pair = make_pair("rgb")
    images = torch.from_numpy(np.moveaxis(pair.image, 2, 0).copy())[None]
    segs = torch.from_numpy(pair.seg)[None, None]
    out_images, out_segs = augment_batch(images, segs, [[]])
    torch.testing.assert_close(out_images, images, atol=1e-5, rtol=0)
    torch.testing.assert_close(out_segs, segs, atol=0, rtol=0)
    flipped, _ = augment_batch(images, None, [[Flip(lr=True)]], order=0)
    torch.testing.assert_close(flipped, images.flip(-1), atol=0, rtol=0)


def test_random_chains_are_reproducible_and_batches_run():
    policy = make_policy(transforms=("rotate", "scale", "intensity", "flip", "translate", "slice_shift"))
    chains = random_chains(policy, 3, ["a", "b", "c"], copy=0, kind="volume", depth=5)
    assert chains == random_chains(policy, 3, ["a", "b", "c"], copy=0, kind="volume", depth=5)
    assert chains != random_chains(policy, 3, ["a", "b", "c"], copy=1, kind="volume", depth=5)
    images, segs = as_batch([make_pair("volume", seed=seed) for seed in range(3)], default_device())
    out_images, out_segs = augment_batch(images, segs, chains)
    assert out_images.shape == images.shape and out_segs.shape == segs.shape


def test_what_the_batch_path_refuses():
    images = torch.zeros(2, 5, 16, 16)
    with pytest.raises(ConfigError, match="crop offline"):
        augment_batch(images, None, [[CropToSegmentation()], []])
    with pytest.raises(ConfigError, match="different output sizes"):
        augment_batch(images, None, [[Resample((8, 8))], []])
    with pytest.raises(ConfigError, match="order 0, 1 or 3"):
        augment_batch(images, None, [[], []], order=5)
    with pytest.raises(ConfigError, match="N chains"):
        augment_batch(images, None, [[]])


def test_batch_values_stay_within_each_input_range_and_three_slice_volumes():
    images = torch.zeros(2, 3, 40, 40)
    images[:, :, 10:30, 10:30] = 1.0  # sharp edges: cubic sampling overshoots them
    images[1] *= 5.0
    out, _ = augment_batch(images, None, [[Rotate(7.5), Scale(1.1)]] * 2, order=3, kind="volume")
    assert out[0].min() >= 0 and out[0].max() <= 1.0
    assert out[1].min() >= 0 and out[1].max() <= 5.0
    assert out.shape == images.shape
