"""Patches drawn on the device: the foreground share, exact crops, determinism per (seed, fold, step)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlnb.segment.patches import DeviceCases, PatchSampler
from mlnb.segment.preprocess import Pack
from tests.segment.cases import bars_and_blobs

CPU = torch.device("cpu")


def pack_of(arrays):
    """An in-memory pack of (image, labels) pairs named c0, c1, ..."""
    cases, offset = [], 0
    for number, (image, _) in enumerate(arrays):
        cases.append({"case": f"c{number}", "origin": f"c{number}", "shape": list(image.shape), "offset": offset})
        offset += image.size
    return Pack(None, {"cases": cases}, np.concatenate([image.ravel() for image, _ in arrays]),
                np.concatenate([labels.ravel() for _, labels in arrays]))


@pytest.fixture()
def cases():
    arrays = [bars_and_blobs(seed) for seed in range(2)] + [bars_and_blobs(5, shape=(6, 20, 24))]
    return arrays, DeviceCases([pack_of(arrays)], ["c0", "c1", "c2"], minimum=(8, 24, 24), device=CPU)


def test_crops_are_the_cases_voxels(cases):
    arrays, device_cases = cases
    assert device_cases.shapes.tolist() == [[8, 32, 32], [8, 32, 32], [8, 24, 24]]  # c2 padded to the minimum
    images, labels = device_cases.crop(torch.tensor([1, 0]), torch.tensor([[0, 3, 5], [0, 8, 0]]), (8, 16, 20))
    np.testing.assert_array_equal(images[0].numpy(), arrays[1][0][:, 3:19, 5:25])
    np.testing.assert_array_equal(labels[1].numpy(), arrays[0][1][:, 8:24, 0:20])
    padded, _ = device_cases.crop(torch.tensor([2]), torch.tensor([[0, 0, 0]]), (8, 24, 24))
    np.testing.assert_array_equal(padded[0, 1:7, 2:22].numpy(), arrays[2][0])  # centred in its padding


def test_a_third_of_the_patches_is_centred_on_foreground_and_draws_repeat(cases):
    _, device_cases = cases
    sampler = PatchSampler(device_cases, (8, 9, 9), 2, 1 / 3, 4, 0)  # seed 4, fold 0
    centred = np.concatenate([sampler.centred(step) for step in range(1, 31)])
    assert centred.sum() == 20 and len(centred) == 60  # exactly a third over the run, whatever the batch size
    for step in range(1, 31):
        draw = sampler.draw(step)
        _, labels = sampler.patches(draw)
        for patch, on_foreground in zip(labels, draw.centred, strict=True):
            if on_foreground:  # the drawn foreground voxel sits at the centre (unless the case's edge moved it)
                assert patch.sum() > 0
        again = sampler.draw(step)
        assert torch.equal(again.starts, draw.starts) and (again.cases == draw.cases).all()
    other_fold = PatchSampler(device_cases, (8, 9, 9), 2, 1 / 3, 4, 1)
    assert any(not torch.equal(other_fold.draw(step).starts, sampler.draw(step).starts) for step in range(1, 6))
    everything = PatchSampler(device_cases, (8, 5, 5), 4, 1.0, 4, 0)
    for step in range(1, 6):
        _, labels = everything.patches(everything.draw(step))
        assert (labels[:, 4, 2, 2] == 1).all()  # the patch centre is the drawn foreground voxel
