from __future__ import annotations

import numpy as np
import pytest
import torch

from mlnb.errors import DataError
from mlnb.training.data import DeviceDataset, EpochBatches, images_to_tensor
from mlnb.training.device import setup_device

CPU = setup_device("cpu")


def digits(count: int = 10) -> tuple[np.ndarray, np.ndarray]:
    images = np.arange(count * 4 * 4, dtype=np.int64).reshape(count, 4, 4).astype(np.uint8)
    return images, np.arange(count) % 3


def test_grey_and_colour_images_become_n_c_h_w():
    assert images_to_tensor(np.zeros((2, 5, 6), np.uint8)).shape == (2, 1, 5, 6)
    colour = np.zeros((2, 5, 6, 3), np.uint8)
    colour[..., 2] = 9
    tensor = images_to_tensor(colour)
    assert tensor.shape == (2, 3, 5, 6) and tensor[:, 2].eq(9).all() and tensor[:, :2].eq(0).all()


@pytest.mark.parametrize(("images", "message"), [
    (np.zeros((2, 4, 4), np.float32), "expected uint8 images, got float32"),
    (np.zeros((0, 4, 4), np.uint8), r"N >= 1\), got shape \(0, 4, 4\)"),
    (np.zeros((4, 4), np.uint8), r"got shape \(4, 4\)"),
    ([[0]], "expected uint8 images, got list"),
])
def test_bad_images_are_named(images, message):
    with pytest.raises(DataError, match=message):
        images_to_tensor(images, "train images")


def test_batches_are_scaled_on_the_device_exactly():
    images, labels = digits()
    data = DeviceDataset(images, labels, CPU, scale=(-1.0, 1.0))
    batch, batch_labels = data.batch(torch.tensor([3, 0]))
    expected = images[[3, 0]].astype(np.float32)[:, None] / 255 * 2 - 1
    np.testing.assert_allclose(batch.numpy(), expected, rtol=0, atol=1e-6)
    assert batch_labels.tolist() == [0, 0] and data.image_shape == (1, 4, 4)
    assert data.images.dtype == torch.uint8  # kept as bytes: scaled per batch


def test_chunks_cover_every_item_once_in_order():
    images, labels = digits(10)
    data = DeviceDataset(images, labels, CPU)
    seen = torch.cat([batch_labels for _, batch_labels in data.chunks(4)])
    assert seen.tolist() == labels.tolist()


@pytest.mark.parametrize(("labels", "message"), [
    (np.arange(9), r"10 images but labels of shape \(9,\)"),
    (np.full(10, 10), "label 10 outside 0..9"),
    (np.full(10, -1), "label -1 outside 0..9"),
    (np.zeros(10, np.float32), "labels must be integers"),
])
def test_bad_labels_are_named(labels, message):
    with pytest.raises(DataError, match=message):
        DeviceDataset(digits(10)[0], labels, CPU, num_classes=10, origin="mnist.npz train")


def test_each_epoch_is_a_permutation_and_steps_are_reproducible():
    batches = EpochBatches(10, 3, CPU, 4, "cnn")
    assert batches.steps_per_epoch == 3
    epoch = torch.cat([batches.indices(step) for step in (1, 2, 3)])
    assert len(set(epoch.tolist())) == 9  # whole batches only, none repeated
    again = EpochBatches(10, 3, CPU, 4, "cnn")
    assert torch.equal(again.indices(5), batches.indices(5))  # no state: step 5 alone
    assert not torch.equal(batches.order(0), batches.order(1))
    assert not torch.equal(EpochBatches(10, 3, CPU, 5, "cnn").order(0), batches.order(0))


@pytest.mark.parametrize(("size", "batch_size", "message"), [
    (0, 1, "empty dataset"), (5, 6, "batch size 6 must be between 1"), (5, 0, "batch size 0")])
def test_bad_batch_requests_are_named(size, batch_size, message):
    with pytest.raises(DataError, match=message):
        EpochBatches(size, batch_size, CPU, 0)
