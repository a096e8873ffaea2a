"""CNN training throughput: the project's data path beside a plain PyTorch DataLoader loop.

Both train the blog's CNN (batch 100, SGD) for the same steps on the same
real-MNIST-sized synthetic set (60,000 uint8 28x28 digits), in one process:

- project: the whole uint8 set on the device once, each batch a gather by index
  from a seeded per-epoch permutation, scaled to floats there (mlnb.training.data);
  bf16 autocast and channels_last on CUDA;
- baseline: a ``Dataset`` of numpy arrays (one image -> float tensor per item) under
  a ``DataLoader`` with default settings (shuffle, batch 100, no workers), fp32.

It prints training images/s of both and their ratio, the data path alone (batches
made per second, no model), and the time of one 60,000-image epoch. On a GPU it
also times the project's path at batch 512 (the `fast` variant's).

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_cnn.py
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlnb.cnn.network import BlogCNN
from mlnb.rng import generator
from mlnb.training.data import DeviceDataset, EpochBatches
from mlnb.training.device import build_model, setup_device

pytestmark = pytest.mark.benchmark

IMAGES, BATCH, STEPS, WARMUP, ROUNDS = 60_000, 100, 100, 5, 3


def mnist_sized() -> tuple[np.ndarray, np.ndarray]:
    rng = generator(0, "bench-train")
    return rng.integers(0, 256, size=(IMAGES, 28, 28), dtype=np.uint8), rng.integers(0, 10, IMAGES, dtype=np.uint8)


class NumpyDigits(torch.utils.data.Dataset):
    """The usual tutorial Dataset: one numpy image at a time, scaled on the host."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return torch.from_numpy(self.images[index].astype(np.float32) / 255.0)[None], int(self.labels[index])


def make_step(setup, model, optimizer):
    def step(images, labels):
        with setup.autocast():
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()
    return step


def synchronize(setup) -> None:
    if setup.device.type == "cuda":
        torch.cuda.synchronize(setup.device)


def timed(batches, step, setup, steps: int = STEPS, batch_size: int = BATCH) -> float:
    """Images/s over ``steps`` training steps after WARMUP steps."""
    for _ in range(WARMUP):
        step(*next(batches))
    synchronize(setup)
    began = time.perf_counter()
    for _ in range(steps):
        step(*next(batches))
    synchronize(setup)
    return steps * batch_size / (time.perf_counter() - began)


def project_batches(data: DeviceDataset, batch_size: int, setup):
    order = EpochBatches(len(data), batch_size, setup, 0, "bench")
    step = 0
    while True:
        step += 1
        yield data.batch(order.indices(step))


def baseline_batches(images, labels, setup):
    while True:
        for batch_images, batch_labels in torch.utils.data.DataLoader(NumpyDigits(images, labels),
                                                                      batch_size=BATCH, shuffle=True):
            yield batch_images.to(setup.device), batch_labels.to(setup.device)


def trainer(setup):
    model = build_model(BlogCNN, setup, 0, "bench")
    return make_step(setup, model, torch.optim.SGD(model.parameters(), lr=0.001))


def data_only(batches, count: int = 200) -> float:
    next(batches)
    began = time.perf_counter()
    for _ in range(count):
        next(batches)
    return count * BATCH / (time.perf_counter() - began)


def test_project_data_path_beside_a_dataloader_loop():
    images, labels = mnist_sized()
    project_setup = setup_device("auto")
    baseline_setup = setup_device(project_setup.device.type, bf16=False, channels_last=False)
    torch.manual_seed(0)  # the DataLoader's shuffle draws from the global RNG (the baseline's way)
    data = DeviceDataset(images, labels, project_setup, num_classes=10)

    ours_batches, ours_step = project_batches(data, BATCH, project_setup), trainer(project_setup)
    theirs_batches, theirs_step = baseline_batches(images, labels, baseline_setup), trainer(baseline_setup)
    rounds = [(timed(ours_batches, ours_step, project_setup), timed(theirs_batches, theirs_step, baseline_setup))
              for _ in range(ROUNDS)]  # interleaved, so a busy machine slows both alike
    ours, theirs = (float(np.median(column)) for column in zip(*rounds, strict=True))
    ours_data = data_only(project_batches(data, BATCH, project_setup))
    theirs_data = data_only(baseline_batches(images, labels, baseline_setup))
    print(f"\nCNN training on {project_setup.describe()}, {torch.get_num_threads()} threads, batch {BATCH} "
          f"(median of {ROUNDS} interleaved rounds of {STEPS} steps):")
    print(f"  project (data on the device): {ours:10,.0f} images/s  (one 60,000-image epoch {IMAGES / ours:.2f} s)")
    print(f"  baseline (DataLoader, fp32):  {theirs:10,.0f} images/s  (epoch {IMAGES / theirs:.2f} s)")
    print(f"  ratio {ours / theirs:.2f}x  (rounds: {', '.join(f'{a / b:.2f}' for a, b in rounds)})")
    print(f"  batches alone: project {ours_data:,.0f} images/s, DataLoader {theirs_data:,.0f} images/s "
          f"({ours_data / theirs_data:.0f}x)")
    if project_setup.device.type == "cuda":
        fast = timed(project_batches(data, 512, project_setup), trainer(project_setup), project_setup,
                     batch_size=512)
        print(f"  project at batch 512: {fast:,.0f} images/s (epoch {IMAGES / fast:.2f} s)")
    assert ours > 0 and theirs > 0
