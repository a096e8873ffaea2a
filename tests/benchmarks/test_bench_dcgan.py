"""DCGAN training speed: data on the device (the project) beside a DataLoader reading PNG files.

Both train the same networks (the blog's DCGAN, gf = df = 64, z 100) on the same
images for the same steps; only how batches arrive and the number format differ:

* project: the packed uint8 array copied to the device once, batches gathered
  by index and scaled there; bf16 autocast and channels_last on CUDA (off on
  the CPU, where they slow things down), optional torch.compile;
* baseline: the straightforward way - one PNG file per image on disk, a
  torch DataLoader (shuffle, worker processes) decoding them, fp32, no compile.

Prints images/s of both and the ratio, and the FID feature extraction's
images/s (Inception-v3 at 299 px). Sizes: MLNB_BENCH_DCGAN_SIZE (default 64),
MLNB_BENCH_DCGAN_BATCH (64), MLNB_BENCH_DCGAN_STEPS (timed steps: 3 on the CPU,
200 on CUDA), MLNB_BENCH_DCGAN_COMPILE=1 for torch.compile (project only).
Target on one GPU: >= 20,000 images/s at 64 px, batch 64 or larger.

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_dcgan.py
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from PIL import Image

from mlnb.dcgan.fid import inception_features
from mlnb.dcgan.network import Discriminator, Generator, sample_z
from mlnb.dcgan.settings import DcganSettings
from mlnb.dcgan.steps import GanSteps
from mlnb.training.data import DeviceDataset, EpochBatches
from mlnb.training.device import build_model, maybe_compile, setup_device

pytestmark = pytest.mark.benchmark

CUDA = torch.cuda.is_available()
SIZE = int(os.environ.get("MLNB_BENCH_DCGAN_SIZE", 64))
BATCH = int(os.environ.get("MLNB_BENCH_DCGAN_BATCH", 64))
STEPS = int(os.environ.get("MLNB_BENCH_DCGAN_STEPS", 200 if CUDA else 3))
COMPILE = os.environ.get("MLNB_BENCH_DCGAN_COMPILE") == "1"
WARMUP = 20 if CUDA else 1
IMAGES = max(BATCH * 8, 2048 if CUDA else BATCH * 4)
FID_IMAGES = 512 if CUDA else 8
SETTINGS = DcganSettings.from_mapping({"batch_size": BATCH})


def images() -> np.ndarray:
    """Smooth random colour fields (PNG compresses them like photos, unlike pure noise)."""
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, (IMAGES, SIZE // 8, SIZE // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)


def gan(setup, compile_networks: bool = False) -> GanSteps:
    generator = build_model(lambda: Generator(SIZE, 3), setup, 0, "bench", "G")
    discriminator = build_model(lambda: Discriminator(SIZE, 3), setup, 0, "bench", "D")
    return GanSteps(generator, discriminator, SETTINGS, setup, maybe_compile(generator, compile_networks),
                    maybe_compile(discriminator, compile_networks))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def project_rate(pixels: np.ndarray) -> float:
    setup = setup_device("auto")
    data = DeviceDataset(pixels, None, setup, scale=(-1.0, 1.0))
    batches = EpochBatches(len(data), BATCH, setup, 0, "bench")
    steps, z_generator = gan(setup, COMPILE), torch.Generator(setup.device).manual_seed(0)

    def step(number: int) -> None:
        real, _ = data.batch(batches.indices(number))
        steps.step(real, sample_z(BATCH, 100, z_generator))

    for number in range(1, WARMUP + 1):
        step(number)
    synchronize(setup.device)
    began = time.perf_counter()
    for number in range(WARMUP + 1, WARMUP + STEPS + 1):
        step(number)
    synchronize(setup.device)
    return STEPS * BATCH / (time.perf_counter() - began)


class PngFolder(torch.utils.data.Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32))
        return pixels.permute(2, 0, 1) / 127.5 - 1


def baseline_rate(pixels: np.ndarray, folder) -> float:
    paths = []
    for number, image in enumerate(pixels):
        paths.append(folder / f"{number:06d}.png")
        Image.fromarray(image).save(paths[-1])
    device = torch.device("cuda" if CUDA else "cpu")
    steps = gan(setup_device(str(device), bf16=False, channels_last=False))
    loader = torch.utils.data.DataLoader(PngFolder(paths), batch_size=BATCH, shuffle=True, drop_last=True,
                                         num_workers=min(4, os.cpu_count() or 1), persistent_workers=True,
                                         generator=torch.Generator().manual_seed(0), pin_memory=CUDA)
    z_generator = torch.Generator().manual_seed(0)

    def batches():
        while True:
            yield from loader

    stream = batches()
    for _ in range(WARMUP):
        steps.step(next(stream).to(device), sample_z(BATCH, 100, z_generator).to(device))
    synchronize(device)
    began = time.perf_counter()
    for _ in range(STEPS):
        steps.step(next(stream).to(device), sample_z(BATCH, 100, z_generator).to(device))
    synchronize(device)
    return STEPS * BATCH / (time.perf_counter() - began)


def fid_rate() -> float:
    device = torch.device("cuda" if CUDA else "cpu")
    pixels = torch.from_numpy(images()[:FID_IMAGES]).permute(0, 3, 1, 2).to(device)
    inception_features(pixels[:2])  # load the network
    synchronize(device)
    began = time.perf_counter()
    inception_features(pixels)
    return FID_IMAGES / (time.perf_counter() - began)


def test_dcgan_training_images_per_second(tmp_path):
    pixels = images()
    threads = torch.get_num_threads()
    project = project_rate(pixels)
    baseline = baseline_rate(pixels, tmp_path)
    fid = fid_rate()
    where = torch.cuda.get_device_name(0) if CUDA else f"CPU, {threads} threads"
    print(f"\nDCGAN {SIZE} px, batch {BATCH}, {STEPS} timed steps ({where}{', compiled' if COMPILE else ''}):")
    print(f"  project (data on the device{', bf16, channels_last' if CUDA else ''}): {project:10.1f} images/s")
    print(f"  baseline (DataLoader of PNG files, fp32):      {baseline:10.1f} images/s")
    print(f"  ratio: {project / baseline:.2f}x")
    print(f"  FID features (Inception-v3, 299 px): {fid:.1f} images/s")
    assert project > 0 and baseline > 0 and fid > 0
