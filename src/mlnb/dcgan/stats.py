"""The real images' Inception statistics, computed once per dataset and cached (``mlnb fid-stats``).

The training images pass through exactly the protocol the generated ones do
(:mod:`mlnb.dcgan.fid`); with ``fid_real_samples`` set, a seeded subset of them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from mlnb.dcgan.fid import FeatureStats, inception_features
from mlnb.dcgan.images import load_images
from mlnb.dcgan.settings import DcganSettings
from mlnb.rng import generator
from mlnb.training.device import torch_threads
from mlnb.training.settings import TrainSettings

log = logging.getLogger(__name__)


def real_subset(count: int, wanted: int | None, seed: int, dataset: str) -> np.ndarray:
    """Indices (ascending) of the images the statistics use: all, or a seeded subset of ``wanted``."""
    if wanted is None or wanted >= count:
        return np.arange(count)
    return np.sort(generator(seed, "dcgan", "fid-real", dataset).choice(count, wanted, replace=False))


def write_real_stats(images_path: Path, out: Path, settings: DcganSettings, train: TrainSettings, seed: int = 0,
                     dataset: str = "images") -> FeatureStats:
    """The statistics of ``settings.fid_real_samples`` of the images (all when null), written to ``out``.

    ``seed`` and ``dataset`` choose the subset; ``train`` gives the device and threads.
    """
    images = load_images(images_path)
    chosen = real_subset(len(images), settings.fid_real_samples, seed, dataset)
    device = train.device_setup().device
    with torch_threads(train.threads):
        pixels = torch.from_numpy(np.ascontiguousarray(images[chosen])).permute(0, 3, 1, 2).to(device)
        began = time.perf_counter()
        stats = FeatureStats.of(inception_features(pixels))
        seconds = time.perf_counter() - began
    stats.save(out)
    log.info("FID statistics of %d of %d images from %s in %.1f s (%.1f images/s) -> %s",
             stats.count, len(images), images_path, seconds, stats.count / seconds, out)
    return stats
