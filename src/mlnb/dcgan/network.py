"""The blog's DCGAN (GAN series part 4, after carpedm20/DCGAN-tensorflow) in PyTorch.

Generator: a linear map from z (``z_dim``) to a 4x4 map of ``8*gf`` channels, then
5x5 stride-2 transposed convolutions, each with batch norm and ReLU, doubling the
side until half the image size, and a last transposed convolution to the image's
channels with tanh. As in the blog, the first doubling keeps ``8*gf`` channels and
each later one halves them (``gf * 64 / side`` channels at side 8, 16, 32, ...;
never fewer than ``gf``, which only matters above 128 px, where the blog's loop
would reach zero). Discriminator: four 5x5 stride-2 convolutions with ``df``,
``2df``, ``4df``, ``8df`` channels, batch norm on all but the first, leaky ReLU
0.2, and a linear logit. Weights start as the blog's: normal with std 0.02
(truncated at two std for the discriminator's convolutions), biases zero.

Images are N x C x S x S in [-1, 1]; S is a power of two >= 8, C is 1 or 3.
"""

from __future__ import annotations

import torch
from torch import nn

from mlnb.errors import ConfigError

KERNEL = 5
LEAK = 0.2
INIT_STD = 0.02
FIRST_SIDE = 4


def check_image_shape(image_size: int, channels: int) -> None:
    """Refuse sizes the architecture cannot make (the blog asserts the same)."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ConfigError(f"DCGAN image size must be a power of two >= 8, got {image_size}")
    if channels not in (1, 3):
        raise ConfigError(f"DCGAN images must have 1 or 3 channels, got {channels}")


def generator_channels(side: int, gf: int) -> int:
    """Channels of the generator's hidden map of this side (the blog's ``depth_mul``)."""
    return gf * max(1, min(8, 64 // side))


def _up(in_channels: int, out_channels: int) -> nn.ConvTranspose2d:
    """A 5x5 stride-2 transposed convolution that exactly doubles the side."""
    return nn.ConvTranspose2d(in_channels, out_channels, KERNEL, stride=2, padding=2, output_padding=1)


def _down(in_channels: int, out_channels: int) -> nn.Conv2d:
    """A 5x5 stride-2 convolution that halves the side (rounding up, as TF's SAME padding)."""
    return nn.Conv2d(in_channels, out_channels, KERNEL, stride=2, padding=2)


class Generator(nn.Module):
    def __init__(self, image_size: int = 64, channels: int = 3, z_dim: int = 100, gf: int = 64):
        super().__init__()
        check_image_shape(image_size, channels)
        self.image_size, self.channels, self.z_dim = image_size, channels, z_dim
        width = generator_channels(FIRST_SIDE, gf)
        self.project = nn.Linear(z_dim, width * FIRST_SIDE * FIRST_SIDE)  # N x z -> N x (8gf*4*4)
        self.project_norm = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU())  # N x 8gf x 4 x 4
        blocks = []
        side = FIRST_SIDE
        while side * 2 < image_size:
            side *= 2
            out = generator_channels(side, gf)
            # N x width x side/2 x side/2 -> N x out x side x side
            blocks.append(nn.Sequential(_up(width, out), nn.BatchNorm2d(out), nn.ReLU()))
            width = out
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(_up(width, channels), nn.Tanh())  # N x width x S/2 x S/2 -> N x C x S x S
        self.apply(_init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        hidden = self.project(z).view(len(z), -1, FIRST_SIDE, FIRST_SIDE)
        return self.to_image(self.blocks(self.project_norm(hidden)))


class Discriminator(nn.Module):
    def __init__(self, image_size: int = 64, channels: int = 3, df: int = 64):
        super().__init__()
        check_image_shape(image_size, channels)
        side = image_size
        for _ in range(4):
            side = (side + 1) // 2
        self.features = nn.Sequential(
            nn.Sequential(_down(channels, df), nn.LeakyReLU(LEAK)),  # N x C x S x S -> N x df x S/2 x S/2
            nn.Sequential(_down(df, 2 * df), nn.BatchNorm2d(2 * df), nn.LeakyReLU(LEAK)),  # -> 2df x S/4
            nn.Sequential(_down(2 * df, 4 * df), nn.BatchNorm2d(4 * df), nn.LeakyReLU(LEAK)),  # -> 4df x S/8
            nn.Sequential(_down(4 * df, 8 * df), nn.BatchNorm2d(8 * df), nn.LeakyReLU(LEAK)),  # -> 8df x S/16
        )
        self.logit = nn.Linear(8 * df * side * side, 1)  # N x (8df * side^2) -> N x 1
        self.apply(_init_weights)
        for block in self.features:
            nn.init.trunc_normal_(block[0].weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """One logit per image (N); the probability "real" is its sigmoid."""
        return self.logit(self.features(images).flatten(1)).squeeze(1)


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, std=INIT_STD)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def sample_z(count: int, z_dim: int, generator: torch.Generator) -> torch.Tensor:
    """z drawn from U(-1, 1), as the blog, on the generator's device."""
    return torch.rand(count, z_dim, generator=generator, device=generator.device) * 2 - 1


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
