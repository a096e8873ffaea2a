"""A 3-D U-Net for anisotropic MRI, planned as nnU-Net plans one.

Level 0 works at the patch's full resolution; each deeper level halves every axis whose voxel spacing is
at most twice the finest (so a thick-slice volume first pools in-plane only, until its voxels are about
isotropic) and that still has at least 8 voxels. A convolution spans 3 voxels along an axis at the same
rule and 1 along a much coarser one. Every block is convolution -> instance norm -> leaky ReLU, twice;
going down is a strided convolution, going up a transposed one, and the last 1x1x1 convolution gives one
logit per label. Tensors are (batch, channels, slices, rows, cols).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import nn

from mlnb.errors import ConfigError

#: widest level (nnU-Net's cap): the deep levels of a 5- or 6-level 3-D U-Net would otherwise dominate memory
MAX_WIDTH = 320
#: an axis is pooled only while it has at least this many voxels
MIN_POOLED_SIZE = 8
#: spacing ratio beyond which an axis counts as coarse: no pooling and 1-voxel kernels along it
ANISOTROPY = 2.0


@dataclasses.dataclass(frozen=True)
class Level:
    """One resolution level: the stride that reaches it from the level above, its kernel and its width."""

    stride: tuple[int, int, int]
    kernel: tuple[int, int, int]
    width: int


def _kernel(spacing: Sequence[float]) -> tuple[int, int, int]:
    finest = min(spacing)
    return tuple(3 if value <= ANISOTROPY * finest else 1 for value in spacing)


def plan_levels(patch: Sequence[int], spacing: Sequence[float], depth: int, base_width: int) -> list[Level]:
    """The U-Net's levels for patches of ``patch`` voxels of ``spacing`` mm (both (slices, rows, cols))."""
    sizes, spacing = list(patch), [float(value) for value in spacing]
    levels = [Level((1, 1, 1), _kernel(spacing), min(base_width, MAX_WIDTH))]
    for number in range(1, depth):
        finest = min(spacing)
        stride = tuple(2 if value <= ANISOTROPY * finest and size >= MIN_POOLED_SIZE else 1
                       for value, size in zip(spacing, sizes, strict=True))
        if stride == (1, 1, 1):
            raise ConfigError(f"segment.depth {depth}: patches of {list(patch)} voxels can be pooled only "
                              f"{number - 1} times (an axis stops below {MIN_POOLED_SIZE} voxels)")
        odd = [axis for axis in range(3) if stride[axis] == 2 and sizes[axis] % 2]
        if odd:
            raise ConfigError(f"segment.patch_size {list(patch)}: axis {odd[0]} has {sizes[odd[0]]} voxels at "
                              f"level {number}, not divisible by 2 (make each axis a multiple of 2 per pooling)")
        sizes = [size // step for size, step in zip(sizes, stride, strict=True)]
        spacing = [value * step for value, step in zip(spacing, stride, strict=True)]
        levels.append(Level(stride, _kernel(spacing), min(base_width * 2 ** number, MAX_WIDTH)))
    return levels


def total_stride(levels: Sequence[Level]) -> tuple[int, int, int]:
    """How many voxels per axis one voxel of the deepest level covers: inputs must be multiples of it."""
    product = [1, 1, 1]
    for level in levels:
        product = [value * step for value, step in zip(product, level.stride, strict=True)]
    return tuple(product)


def conv_block(channels_in: int, channels_out: int, kernel, stride=(1, 1, 1)) -> nn.Sequential:
    """Convolution (strided when going down) -> instance norm -> leaky ReLU, then the same at stride 1."""
    padding = tuple(size // 2 for size in kernel)
    return nn.Sequential(
        nn.Conv3d(channels_in, channels_out, kernel, stride=stride, padding=padding),
        nn.InstanceNorm3d(channels_out, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
        nn.Conv3d(channels_out, channels_out, kernel, padding=padding),
        nn.InstanceNorm3d(channels_out, affine=True),
        nn.LeakyReLU(0.01, inplace=True),
    )


class UNet3D(nn.Module):
    """(N, channels, S, R, C) images -> (N, labels, S, R, C) logits; S, R, C multiples of the total stride."""

    def __init__(self, levels: Sequence[Level], labels: int, channels: int = 1):
        super().__init__()
        if labels < 2:
            raise ConfigError(f"a segmentation needs at least 2 labels (background and one more), got {labels}")
        self.levels = tuple(levels)
        widths = [level.width for level in levels]
        self.down = nn.ModuleList()
        for number, level in enumerate(levels):
            # level l: (N, width_l, S / stride_l, R / stride_l, C / stride_l), stride_l the product down to l
            self.down.append(conv_block(channels if number == 0 else widths[number - 1], level.width,
                                        level.kernel, level.stride))
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for number in range(len(levels) - 1, 0, -1):
            # level l -> l - 1: transposed convolution back to level l - 1's grid, then the skip concatenated
            # (2 x width_{l-1} channels) and merged to width_{l-1}
            stride = levels[number].stride
            self.up.append(nn.ConvTranspose3d(widths[number], widths[number - 1], stride, stride=stride))
            self.merge.append(conv_block(2 * widths[number - 1], widths[number - 1], levels[number - 1].kernel))
        self.head = nn.Conv3d(widths[0], labels, 1)  # (N, labels, S, R, C)

    @property
    def stride(self) -> tuple[int, int, int]:
        return total_stride(self.levels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        skips = []
        features = images
        for block in self.down:
            features = block(features)
            skips.append(features)
        features = skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            features = merge(torch.cat([up(features), skips.pop()], dim=1))
        return self.head(features)
