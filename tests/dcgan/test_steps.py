"""One DCGAN step: both networks change, the metrics are the blog's, the same seed gives the same step."""

from __future__ import annotations

import torch

from mlnb.dcgan.network import Discriminator, Generator, sample_z
from mlnb.dcgan.settings import DcganSettings
from mlnb.dcgan.steps import GanSteps
from mlnb.training.device import build_model, setup_device

SETTINGS = DcganSettings.from_mapping({"z_dim": 8, "gf": 4, "df": 4, "batch_size": 4})


def make_steps(seed=0):
    setup = setup_device("cpu")
    generator = build_model(lambda: Generator(16, 1, 8, 4), setup, seed, "g")
    discriminator = build_model(lambda: Discriminator(16, 1, 4), setup, seed, "d")
    return GanSteps(generator, discriminator, SETTINGS, setup)


def snapshot(module):
    return {name: value.clone() for name, value in module.state_dict().items()}


def test_one_step_changes_both_networks_and_reports_losses_and_probabilities():
    steps = make_steps()
    before_g, before_d = snapshot(steps.generator), snapshot(steps.discriminator)
    real = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    metrics = steps.step(real, sample_z(4, 8, torch.Generator().manual_seed(2)))
    assert set(metrics) == {"d_loss", "d_loss_real", "d_loss_fake", "d_real", "d_fake", "g_loss"}
    assert all(value.dim() == 0 for value in metrics.values())
    assert torch.isclose(metrics["d_loss"], metrics["d_loss_real"] + metrics["d_loss_fake"])
    assert 0 < metrics["d_real"] < 1 and 0 < metrics["d_fake"] < 1
    for before, network in ((before_g, steps.generator), (before_d, steps.discriminator)):
        changed = [name for name, value in network.state_dict().items() if not torch.equal(value, before[name])]
        assert any(name.endswith("weight") for name in changed)
    assert steps.generator_optimizer.state_dict()["state"][0]["step"] == 2  # generator updated twice


def test_the_same_seed_gives_the_same_step_and_another_seed_another():
    real = torch.zeros(4, 1, 16, 16)
    z = sample_z(4, 8, torch.Generator().manual_seed(2))
    runs = [make_steps(seed) for seed in (0, 0, 1)]
    for steps in runs:
        steps.step(real, z)
    weights = [steps.generator.to_image[0].weight for steps in runs]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])


def test_generate_uses_running_statistics_and_leaves_training_mode_on():
    steps = make_steps()
    z = sample_z(6, 8, torch.Generator().manual_seed(3))
    images = steps.generate(z, batch_size=4)
    assert images.shape == (6, 1, 16, 16) and steps.generator.training
    assert torch.allclose(images[:1], steps.generate(z[:1]), atol=1e-6)  # no batch dependence
