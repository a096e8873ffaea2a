"""``mlnb fid-stats``: the real images' Inception statistics, computed once per dataset and cached.

The training images pass through exactly the protocol the generated ones do
(:mod:`mlnb.dcgan.fid`); with ``fid_real_samples`` set, a seeded subset of them.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from mlnb.dcgan.fid import FeatureStats, inception_features
from mlnb.dcgan.images import load_images
from mlnb.dcgan.settings import DcganSettings
from mlnb.rng import generator
from mlnb.settings import add_settings_arguments, settings_from_args
from mlnb.training.device import torch_threads
from mlnb.training.settings import add_train_arguments, train_settings_from_args

log = logging.getLogger(__name__)


def configure_parser(parser) -> None:
    parser.add_argument("images", help="packed uint8 images: faces.npy (N x S x S x 3) or mnist.npz (x_train)")
    parser.add_argument("--out", required=True, help="statistics file to write (.npz)")
    parser.add_argument("--seed", type=int, default=0, help="master seed (chooses the subset)")
    parser.add_argument("--dataset", default="images", help="dataset name (a key of the subset's seed)")
    add_settings_arguments(parser, DcganSettings)
    add_train_arguments(parser)


def real_subset(count: int, wanted: int | None, seed: int, dataset: str) -> np.ndarray:
    """Indices (ascending) of the images the statistics use: all, or a seeded subset of ``wanted``."""
    if wanted is None or wanted >= count:
        return np.arange(count)
    return np.sort(generator(seed, "dcgan", "fid-real", dataset).choice(count, wanted, replace=False))


def run(args) -> int:
    settings, train = settings_from_args(DcganSettings, args), train_settings_from_args(args)
    images = load_images(args.images)
    chosen = real_subset(len(images), settings.fid_real_samples, args.seed, args.dataset)
    device = train.device_setup().device
    with torch_threads(train.threads):
        pixels = torch.from_numpy(np.ascontiguousarray(images[chosen])).permute(0, 3, 1, 2).to(device)
        began = time.perf_counter()
        stats = FeatureStats.of(inception_features(pixels))
        seconds = time.perf_counter() - began
    stats.save(args.out)
    log.info("FID statistics of %d of %d images from %s in %.1f s (%.1f images/s) -> %s",
             stats.count, len(images), args.images, seconds, stats.count / seconds, args.out)
    return 0
