"""The same transforms on a batch of tensors, for augmentation on the fly during training.

Each item's chain is composed exactly as in the fused path (:mod:`mlnb.augment.fused`)
into pull matrices, turned into ``affine_grid`` thetas and applied with one
``grid_sample`` per batch, on whatever device the tensors are on (the GPU when
there is one). Images use bicubic (order 3), bilinear (1) or nearest (0)
sampling — the same cubic kernel as OpenCV's — segmentations nearest; image
edges repeat (``padding_mode='border'``), segmentations are padded with 0. Layout is channels first:
``(N, depth, H, W)``
with depth = 1 (grey), 3 (RGB) or the slices of a volume; segmentations are
``(N, 1, H, W)`` for 2-D images and ``(N, depth, H, W)`` for volumes.

Crop-to-segmentation depends on each item's data and belongs offline
(``mlnb augment``); batches are already cropped and of one size.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mlnb.augment import affine
from mlnb.augment.fused import nearest_slices, plan_chain, slice_weights
from mlnb.augment.pair import Trace
from mlnb.augment.policy import RandomPolicy, copy_generator
from mlnb.augment.transforms import CropToSegmentation, Transform
from mlnb.errors import ConfigError

GRID_SAMPLE_MODES = {0: "nearest", 1: "bilinear", 3: "bicubic"}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def random_chains(policy: RandomPolicy, seed: int, items: Sequence[str], copy: int, kind: str,
                  depth: int) -> list[list[Transform]]:
    """One random chain per item, drawn from (seed, item, copy) — e.g. copy = epoch."""
    return [policy.draw_augmentations(copy_generator(seed, item, copy), kind, depth) for item in items]


def _kind(depth: int) -> str:
    return {1: "grey", 3: "rgb"}.get(depth, "volume")


def _plans(chains, plane, depth, kind):
    plans = []
    for index, chain in enumerate(chains):
        if any(isinstance(transform, CropToSegmentation) for transform in chain):
            raise ConfigError("crop_to_segmentation depends on each item's segmentation: crop offline "
                              "(mlnb augment), not in the batched torch path")
        plans.append(plan_chain(chain, plane, depth, Trace(f"batch item {index}", kind)))
    shapes = {(plan.plane, plan.slices) for plan in plans}
    if len(shapes) != 1:
        raise ConfigError(f"the chains of one batch give different output sizes {sorted(shapes)}")
    return plans


def _thetas(plans, plane_in, plane_out, per_slice: bool, depth: int) -> torch.Tensor:
    thetas = []
    for plan in plans:
        pulls = np.broadcast_to(plan.pulls(), (depth if per_slice else 1, 3, 3))
        thetas.extend(affine.to_torch_theta(pull, plane_in, plane_out) for pull in pulls)
    return torch.from_numpy(np.stack(thetas)).float()


def _sample(batch: torch.Tensor, thetas: torch.Tensor, plane_out, mode: str, per_slice: bool,
            padding: str) -> torch.Tensor:
    count, depth = batch.shape[:2]
    source = batch.reshape(count * depth, 1, *batch.shape[2:]) if per_slice else batch
    grid = F.affine_grid(thetas.to(batch.device), [len(source), source.shape[1], *plane_out], align_corners=True)
    sampled = F.grid_sample(source, grid, mode=mode, padding_mode=padding, align_corners=True)
    return sampled.reshape(count, depth, *plane_out)


def _resample_slices(batch: torch.Tensor, slices: int, order: int) -> torch.Tensor:
    if slices == batch.shape[1]:
        return batch
    weights = torch.tensor(slice_weights(batch.shape[1], slices, order)).to(batch)
    return torch.einsum("dk,nkhw->ndhw", weights, batch)


def augment_batch(images: torch.Tensor, segs: torch.Tensor | None, chains: Sequence[Sequence[Transform]],
                  order: int = 3, kind: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply ``chains[i]`` to item i of ``images`` (N, depth, H, W) and of ``segs``; return both.

    ``kind`` ("grey", "rgb" or "volume") defaults to what the depth suggests (1 grey,
    3 RGB, else volume); pass "volume" for a 3-slice volume.
    """
    if images.ndim != 4 or len(chains) != len(images):
        raise ConfigError(f"augment_batch needs (N, depth, H, W) images and N chains, got shape "
                          f"{tuple(images.shape)} and {len(chains)} chains")
    if order not in GRID_SAMPLE_MODES:
        raise ConfigError(f"the torch path samples with order 0, 1 or 3, not {order}")
    count, depth, *plane = images.shape
    kind = kind or _kind(depth)
    plans = _plans(chains, tuple(plane), depth, kind)
    plane_out, slices = plans[0].plane, plans[0].slices
    per_slice = any(len(plan.forward) > 1 for plan in plans)
    thetas = _thetas(plans, plane, plane_out, per_slice, depth)

    images = images.float()
    low = images.amin(dim=(1, 2, 3)).tolist()
    high = images.amax(dim=(1, 2, 3)).tolist()
    value_maps = torch.tensor([plan.value_map(lo, hi) for plan, lo, hi in zip(plans, low, high, strict=True)],
                              device=images.device, dtype=images.dtype)
    out = _resample_slices(_sample(images, thetas, plane_out, GRID_SAMPLE_MODES[order], per_slice, "border"),
                           slices, order)
    # As in the fused engine: no cubic overshoot beyond each item's input range.
    as_column = {"device": images.device, "dtype": images.dtype}
    out = torch.clamp(out, torch.tensor(low, **as_column)[:, None, None, None],
                      torch.tensor(high, **as_column)[:, None, None, None])
    out = out * value_maps[:, 0, None, None, None] + value_maps[:, 1, None, None, None]

    if segs is None:
        return out, None
    labels = _sample(segs.float(), thetas, plane_out, "nearest", per_slice, "zeros")  # per-slice: volumes only
    if slices != depth:  # only volumes change their slice count
        labels = labels[:, torch.from_numpy(nearest_slices(depth, slices)).to(labels.device)]
    return out, labels.to(segs.dtype)
