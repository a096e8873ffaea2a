"""The blog's DCGAN: shapes at every supported size, refused sizes, the blog's parameter counts."""

from __future__ import annotations

import pytest
import torch

from mlnb.dcgan.network import Discriminator, Generator, generator_channels, parameter_count, sample_z
from mlnb.errors import ConfigError


@pytest.mark.parametrize("size", [8, 16, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_makes_images_in_range_and_discriminator_one_logit_each(size, channels):
    generator = Generator(size, channels, z_dim=10, gf=4)
    discriminator = Discriminator(size, channels, df=4)
    z = sample_z(5, 10, torch.Generator().manual_seed(0))
    images = generator(z)
    assert images.shape == (5, channels, size, size)
    assert images.abs().max() <= 1
    assert discriminator(images).shape == (5,)


def test_128_px_keeps_at_least_gf_channels():
    generator = Generator(128, 3, z_dim=4, gf=2)
    assert generator(torch.zeros(2, 4)).shape == (2, 3, 128, 128)
    assert [generator_channels(side, 2) for side in (4, 8, 16, 32, 64)] == [16, 16, 8, 4, 2]


@pytest.mark.parametrize("size", [0, 4, 12, 48, 100])
def test_sizes_that_are_not_powers_of_two_of_at_least_8_are_refused(size):
    for network in (Generator, Discriminator):
        with pytest.raises(ConfigError, match=f"power of two >= 8, got {size}"):
            network(size, 3)


def test_channels_other_than_1_or_3_are_refused():
    with pytest.raises(ConfigError, match="1 or 3 channels, got 4"):
        Generator(64, 4)


def test_parameter_counts_are_the_blogs_at_64_px():
    # Generator: linear z(100) -> 4x4x512, BN; transposed 5x5 convs 512->512 (8x8), 512->256 (16x16),
    # 256->128 (32x32), BN after each; 128->3 (64x64). Every conv has a bias; BN has scale and shift.
    linear = 100 * 512 * 16 + 512 * 16
    convs = sum(i * o * 25 + o for i, o in [(512, 512), (512, 256), (256, 128), (128, 3)])
    norms = 2 * (512 + 512 + 256 + 128)
    assert parameter_count(Generator(64, 3)) == linear + convs + norms == 11_490_307
    # Discriminator: convs 3->64->128->256->512 (BN on the last three), linear 8192 -> 1 (the blog's reshape).
    convs = sum(i * o * 25 + o for i, o in [(3, 64), (64, 128), (128, 256), (256, 512)])
    norms = 2 * (128 + 256 + 512)
    assert parameter_count(Discriminator(64, 3)) == convs + norms + 8192 + 1 == 4_316_545


def test_z_is_uniform_on_minus_one_to_one_and_reproducible():
    z = sample_z(4000, 100, torch.Generator().manual_seed(3))
    assert z.min() >= -1 and z.max() < 1
    assert abs(z.mean().item()) < 0.01 and abs(z.var().item() - 1 / 3) < 0.01
    assert torch.equal(z, sample_z(4000, 100, torch.Generator().manual_seed(3)))


def test_initial_weights_follow_the_blog():
    discriminator = Discriminator(16, 1, df=8)
    first = discriminator.features[0][0].weight
    assert first.abs().max() <= 0.04 and abs(first.std().item() - 0.02) < 0.005
    layers = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    assert len(layers) == 5 and all(torch.count_nonzero(layer.bias) == 0 for layer in layers)
