"""Segmentation: on-device augmentation beside the CPU fused engine on the same draws, and training steps/s.

Patches of the heart set's size class (smooth random volumes, labels from thresholds) go through the
augment section's default policy (the blog's five transforms) two ways: the batched torch path on the
training device (one ``grid_sample`` per batch) and the fused CPU engine (OpenCV, one patch at a time),
with the same drawn chains. Then a U-Net training step (Dice + cross-entropy, Adam) on the same device,
and the augmentation's share of a step. On the CPU here: a small patch and network; on CUDA: nnU-Net's
heart patch (80 x 192 x 160), width 32, 5 levels, bf16 and channels_last_3d.

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_segment.py
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from mlnb.augment import Pair, augment
from mlnb.augment.settings import AugmentSettings
from mlnb.segment.losses import dice_ce_loss
from mlnb.segment.network import UNet3D, plan_levels
from mlnb.segment.onthefly import OnTheFly, centre_crop
from mlnb.training.device import setup_device
from tests.augment.augment_helpers import smooth_image

CUDA = torch.cuda.is_available()
#: (patch, base width, levels, batch) on each device
SIZES = {"cuda": ((80, 192, 160), 32, 5, 2), "cpu": ((16, 64, 64), 8, 4, 2)}
REPEATS = {"cuda": 20, "cpu": 3}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@pytest.mark.benchmark
def test_bench_segment_augmentation_and_training_steps():
    setup = setup_device("auto")
    device, kind = setup.device, setup.device.type
    patch, width, depth, batch = SIZES[kind]
    repeats = REPEATS[kind]
    policy = AugmentSettings.from_mapping({}).policy()
    augmenter = OnTheFly(policy, 3, patch, 0, "bench")
    volumes = np.stack([smooth_image(augmenter.source, seed=seed) for seed in range(batch)])
    images = torch.from_numpy(volumes).to(device)
    labels = torch.from_numpy((volumes > 0.5).astype(np.uint8)).to(device)
    names, slots = [f"case{item}" for item in range(batch)], list(range(batch))

    augmenter(images, labels, names, 0, slots)  # warm-up (kernels, caches)
    synchronize(device)
    began = time.perf_counter()
    for step in range(1, repeats + 1):
        augmented, augmented_labels = augmenter(images, labels, names, step, slots)
    synchronize(device)
    device_seconds = (time.perf_counter() - began) / repeats

    began = time.perf_counter()
    cpu_repeats = min(repeats, 3)
    for step in range(1, cpu_repeats + 1):
        for volume, chain in zip(volumes, augmenter.chains(names, step, slots), strict=True):
            pair = Pair(np.moveaxis(volume, 0, 2), np.moveaxis((volume > 0.5).astype(np.uint8), 0, 2), kind="volume")
            out = augment(pair, chain)
            centre_crop(torch.from_numpy(np.moveaxis(out.image, 2, 0))[None], patch)
    cpu_seconds = (time.perf_counter() - began) / cpu_repeats

    levels = plan_levels(patch, (1.0, 1.0, 1.0), depth, width)
    model = UNet3D(levels, labels=2).to(device)
    if setup.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs = augmented[:, None].float()
    if setup.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last_3d)

    def step() -> None:
        with setup.autocast():
            logits = model(inputs)
        loss = dice_ce_loss(logits, augmented_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    synchronize(device)
    began = time.perf_counter()
    for _ in range(repeats):
        step()
    synchronize(device)
    step_seconds = (time.perf_counter() - began) / repeats

    print(f"\nsegmentation on {setup.describe()}: patches {list(patch)} cut {list(augmenter.source)}, batch {batch}, "
          f"U-Net width {width} x {depth} levels")
    print(f"  augmentation on the device : {batch / device_seconds:9.1f} patches/s ({device_seconds * 1e3:.1f} ms "
          "per batch)")
    print(f"  fused CPU engine, same draws: {batch / cpu_seconds:9.1f} patches/s ({cpu_seconds * 1e3:.1f} ms "
          "per batch)")
    share = 100 * device_seconds / (device_seconds + step_seconds)
    print(f"  training                   : {1 / step_seconds:9.2f} iterations/s ({step_seconds * 1e3:.1f} ms "
          f"per step); augmentation = {share:.1f} % of an augmented step")
    assert augmented.shape == (batch, *patch)
