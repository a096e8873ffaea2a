"""The augment section's random policy applied to each step's patches on the device, in one resampling.

Every patch gets its own chain, drawn from (seed, "segment", "onthefly", fold, case, step, slot) — slot
being its place in the step's batch — and the whole batch is resampled by one ``grid_sample``
(:func:`mlnb.augment.torch_batch.augment_batch`: images with the augment section's spline order, labels
nearest, intensity included). The policy's transforms act in-plane about the patch's centre, so each
patch is cut larger in-plane than the network's (by what the largest rotation, the smallest scale and the
largest shift can bring into view) and its centre is kept after augmenting: no corner of a training patch
is filled by the border rule. Nothing leaves the device but the drawn parameters, which go to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mlnb.augment.policy import RandomPolicy
from mlnb.augment.torch_batch import GRID_SAMPLE_MODES, augment_batch
from mlnb.augment.transforms import Transform
from mlnb.errors import ConfigError
from mlnb.rng import generator


def source_size(policy: RandomPolicy, patch: Sequence[int]) -> tuple[int, int, int]:
    """The patch to cut so that, after any chain of ``policy``, its centre ``patch`` holds only real voxels."""
    transforms = set(policy.transforms)
    angle = min(policy.rotation_degrees, 45.0) if "rotate" in transforms else 0.0
    reach = math.cos(math.radians(angle)) + math.sin(math.radians(angle))
    if "scale" in transforms:
        reach /= min(policy.scale_range[0], 1.0)
    shift = (policy.translation_pixels if "translate" in transforms else 0) + \
        (policy.slice_shift_pixels if "slice_shift" in transforms else 0)
    slices, *plane = patch
    # an even margin keeps the patch's centre on the source's, about which the transforms act
    return (slices, *(size + 2 * (math.ceil(size * (reach - 1) / 2 - 1e-9) + shift) for size in plane))


class OnTheFly:
    """``augment(images, labels, names, step, slots)``: patches cut at :attr:`source`, augmented, cropped."""

    def __init__(self, policy: RandomPolicy, order: int, patch: Sequence[int], seed: int, *keys: object):
        if order not in GRID_SAMPLE_MODES:
            raise ConfigError(f"augment.order {order}: the device path samples with order 0, 1 or 3")
        self.policy, self.order, self.patch = policy, order, tuple(patch)
        self.source = source_size(policy, patch)
        self.seed, self.keys = seed, keys

    def chains(self, names: Sequence[str], step: int, slots: Sequence[int]) -> list[list[Transform]]:
        return [self.policy.draw_augmentations(
            generator(self.seed, "segment", "onthefly", *self.keys, name, step, slot), "volume", self.patch[0])
            for name, slot in zip(names, slots, strict=True)]

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, names: Sequence[str], step: int,
                 slots: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, slices, rows, cols) patches of :attr:`source` size -> augmented ones of the patch size."""
        images, labels = augment_batch(images, labels, self.chains(names, step, slots), order=self.order,
                                       kind="volume")
        return centre_crop(images, self.patch), centre_crop(labels, self.patch)


def centre_crop(batch: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The centre ``size`` of each item of a (B, slices, rows, cols) batch."""
    window = [slice((have - want) // 2, (have - want) // 2 + want) for have, want in zip(batch.shape[1:], size,
                                                                                         strict=True)]
    return batch[:, window[0], window[1], window[2]]
