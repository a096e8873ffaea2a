"""Cases on the device and patches drawn there: no DataLoader, no file read per step.

:class:`DeviceCases` copies the chosen cases of a pack to the device once, each padded (with its lowest
value, labels with background) to at least the patch size, as flat arrays; a batch of patches is one
gather by index arithmetic. :class:`PatchSampler` draws step s's patches from a generator seeded with
(seed, "segment", "patches", fold, s): which case each patch comes from and where it sits (uniformly),
and, for ``foreground_share`` of the patches, a foreground voxel of its case to centre it on (nnU-Net's
oversampling). Patch number g of the run (counting over steps) is centred on the foreground when
``floor((g + 1) * share)`` moves past ``floor(g * share)``, so the share is exact over the run whatever
the batch size. The draws are small arrays on the host; the positions of the foreground voxels stay on
the device. A resumed run draws what an uninterrupted one would, and nothing waits on the device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from mlnb.errors import ConfigError
from mlnb.rng import generator
from mlnb.segment.preprocess import Pack


class DeviceCases:
    """The named cases of packs, on ``device``, each at least ``minimum`` (slices, rows, cols) in size."""

    def __init__(self, packs: Sequence[Pack], names: Sequence[str], minimum: Sequence[int], device: torch.device):
        self.names = list(names)
        images, labels, shapes, foreground = [], [], [], []
        for name in self.names:
            pack = next(pack for pack in packs if name in pack.names)
            image, label = pack.arrays(name)
            widths = [((extra := max(0, want - have)) // 2, extra - extra // 2)
                      for want, have in zip(minimum, image.shape, strict=True)]
            image = np.pad(image, widths, constant_values=image.min())
            label = np.pad(label, widths)
            images.append(image.ravel())
            labels.append(label.ravel())
            shapes.append(image.shape)
            foreground.append(np.flatnonzero(label))
        self.shapes = np.asarray(shapes, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.shapes.prod(axis=1))[:-1]])
        self.foreground_counts = np.asarray([len(voxels) for voxels in foreground], dtype=np.int64)
        self.foreground_offsets = np.concatenate([[0], np.cumsum(self.foreground_counts)[:-1]])
        self.device = device
        self.images = torch.from_numpy(np.concatenate(images)).to(device)
        self.labels = torch.from_numpy(np.concatenate(labels)).to(device)
        self.foreground = torch.from_numpy(np.concatenate(foreground).astype(np.int64)).to(device)
        self._shapes = torch.from_numpy(self.shapes).to(device)
        self._offsets = torch.from_numpy(self.offsets).to(device)
        self._foreground_offsets = torch.from_numpy(self.foreground_offsets).to(device)

    def __len__(self) -> int:
        return len(self.names)

    def foreground_position(self, cases: torch.Tensor, picks: torch.Tensor) -> torch.Tensor:
        """(B, 3) positions of foreground voxel ``picks[b]`` (an index among its case's) of case ``cases[b]``."""
        flat = self.foreground[self._foreground_offsets[cases] + picks]
        shapes = self._shapes[cases]
        rows_cols = shapes[:, 1] * shapes[:, 2]
        return torch.stack([flat // rows_cols, (flat % rows_cols) // shapes[:, 2], flat % shapes[:, 2]], dim=1)

    def crop(self, cases: torch.Tensor, starts: torch.Tensor, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, labels) of (B, *size) patches: case ``cases[b]`` from corner ``starts[b]``, on the device."""
        shapes = self._shapes[cases]
        axes = [torch.arange(length, device=self.device) for length in size]
        slices = (starts[:, 0, None] + axes[0])[:, :, None, None]
        rows = (starts[:, 1, None] + axes[1])[:, None, :, None]
        cols = (starts[:, 2, None] + axes[2])[:, None, None, :]
        index = (self._offsets[cases, None, None, None]
                 + (slices * shapes[:, 1, None, None, None] + rows) * shapes[:, 2, None, None, None] + cols)
        return self.images[index], self.labels[index]


@dataclasses.dataclass(frozen=True)
class Draw:
    """Where step s's patches come from: case numbers (host and device) and corners (device)."""

    cases: np.ndarray
    device_cases: torch.Tensor
    starts: torch.Tensor
    centred: np.ndarray


class PatchSampler:
    """Patches of ``size`` from ``cases``, ``foreground_share`` of them centred on a foreground voxel."""

    def __init__(self, cases: DeviceCases, size: Sequence[int], batch_size: int, foreground_share: float,
                 seed: int, *keys: object):
        if (cases.shapes < np.asarray(size)).any():
            raise ConfigError(f"patch size {list(size)} exceeds a padded case's shape")
        self.cases, self.size, self.batch_size = cases, tuple(size), batch_size
        self.share, self.seed, self.keys = foreground_share, seed, keys

    def centred(self, step: int) -> np.ndarray:
        """Which patches of 1-based ``step`` are centred on a foreground voxel."""
        numbers = (step - 1) * self.batch_size + np.arange(self.batch_size)
        return np.floor((numbers + 1) * self.share) > np.floor(numbers * self.share)

    def draw(self, step: int) -> Draw:
        rng = generator(self.seed, "segment", "patches", *self.keys, step)
        count = self.batch_size
        cases = rng.integers(0, len(self.cases), size=count)
        room = self.cases.shapes[cases] - np.asarray(self.size) + 1
        corners = np.floor(rng.random((count, 3)) * room).astype(np.int64)
        centred = self.centred(step) & (self.cases.foreground_counts[cases] > 0)
        picks = np.floor(rng.random(count) * self.cases.foreground_counts[cases]).astype(np.int64)
        device = self.cases.device
        device_cases = torch.from_numpy(cases).to(device)
        starts = torch.from_numpy(corners).to(device)
        if centred.any():
            half = torch.tensor([size // 2 for size in self.size], device=device)
            centre = self.cases.foreground_position(device_cases, torch.from_numpy(picks).to(device))
            highest = torch.from_numpy(room - 1).to(device)
            on_foreground = torch.minimum((centre - half).clamp(min=0), highest)
            starts = torch.where(torch.from_numpy(centred).to(device)[:, None], on_foreground, starts)
        return Draw(cases, device_cases, starts, centred)

    def patches(self, draw: Draw) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cases.crop(draw.device_cases, draw.starts, self.size)
