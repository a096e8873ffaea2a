"""A whole dataset on the device: copied once as uint8, scaled there, batches drawn by index.

No DataLoader and no per-batch host work: the packed uint8 images (N x H x W or
N x H x W x C, as the data stages write them) move to the device once, in
N x C x H x W layout, and every batch is a gather by an index tensor followed
by the scaling to floats. The order of each epoch is a permutation drawn from
(seed, "batches", epoch), so the batches of step s depend only on s: a resumed
run draws exactly the batches an uninterrupted run would, without saving any
sampler state.
"""

from __future__ import annotations

import numpy as np
import torch

from mlnb.errors import DataError
from mlnb.rng import torch_seed
from mlnb.training.device import DeviceSetup


def images_to_tensor(images: np.ndarray, origin: str = "images") -> torch.Tensor:
    """uint8 N x H x W (grey) or N x H x W x C images as a uint8 N x C x H x W tensor (on the CPU)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        kind = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise DataError(f"{origin}: expected uint8 images, got {kind}")
    if images.ndim not in (3, 4) or len(images) == 0 or 0 in images.shape:
        raise DataError(f"{origin}: expected N x H x W or N x H x W x C images (N >= 1), got shape {images.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(images))
    return tensor.unsqueeze(1) if images.ndim == 3 else tensor.permute(0, 3, 1, 2)


class DeviceDataset:
    """Images (and optional integer labels) held on the device; ``batch(indices)`` gives scaled floats.

    ``scale`` maps uint8 0..255 linearly onto (low, high): (0, 1) for the CNN,
    (-1, 1) for the DCGAN's tanh output.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, setup: DeviceSetup,
                 scale: tuple[float, float] = (0.0, 1.0), num_classes: int | None = None,
                 origin: str = "dataset"):
        pixels = images_to_tensor(images, f"{origin} images")
        if labels is not None:
            labels = np.asarray(labels)
            if labels.shape != (len(pixels),):
                raise DataError(f"{origin}: {len(pixels)} images but labels of shape {labels.shape}")
            if not np.issubdtype(labels.dtype, np.integer):
                raise DataError(f"{origin}: labels must be integers, got {labels.dtype}")
            if num_classes is not None and (labels.min() < 0 or labels.max() >= num_classes):
                bad = int(labels.min() if labels.min() < 0 else labels.max())
                raise DataError(f"{origin}: label {bad} outside 0..{num_classes - 1}")
        self.setup = setup
        self.images = setup.images(pixels.to(setup.device))
        self.labels = None if labels is None else torch.from_numpy(labels.astype(np.int64)).to(setup.device)
        low, high = scale
        self._scale, self._offset = (high - low) / 255.0, low

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """C x H x W."""
        return tuple(self.images.shape[1:])

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(float images N x C x H x W, labels or None) for the given indices, all on the device."""
        images = self.setup.images(self.images[indices].float().mul_(self._scale).add_(self._offset))
        return images, None if self.labels is None else self.labels[indices]

    def chunks(self, size: int):
        """Every item in order, ``size`` at a time (for evaluation)."""
        for start in range(0, len(self), size):
            yield self.batch(torch.arange(start, min(start + size, len(self)), device=self.setup.device))


class EpochBatches:
    """The indices of step s's batch: epochs of shuffled, whole batches (the last partial one dropped)."""

    def __init__(self, size: int, batch_size: int, setup: DeviceSetup, seed: int, *keys: object):
        if size < 1:
            raise DataError("cannot draw batches from an empty dataset")
        if not 1 <= batch_size <= size:
            raise DataError(f"batch size {batch_size} must be between 1 and the dataset's {size} items")
        self.size, self.batch_size, self.setup = size, batch_size, setup
        self.steps_per_epoch = size // batch_size
        self._seed, self._keys = seed, keys
        self._epoch, self._order = -1, None

    def order(self, epoch: int) -> torch.Tensor:
        """The permutation used in ``epoch`` (drawn on the device from (seed, *keys, "batches", epoch))."""
        if epoch != self._epoch:
            generator = torch.Generator(device=self.setup.device)
            generator.manual_seed(torch_seed(self._seed, *self._keys, "batches", epoch))
            self._order = torch.randperm(self.size, generator=generator, device=self.setup.device)
            self._epoch = epoch
        return self._order

    def indices(self, step: int) -> torch.Tensor:
        """Indices of the batch of 1-based ``step``."""
        epoch, position = divmod(step - 1, self.steps_per_epoch)
        start = position * self.batch_size
        return self.order(epoch)[start:start + self.batch_size]
