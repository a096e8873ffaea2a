"""One DCGAN training step, as the blog's: a discriminator update, then the generator updated twice.

Both networks see the same z in a step (the blog feeds ``batch_z`` to all three
updates). Losses are sigmoid cross-entropies on the discriminator's logits:
D learns real -> 1 and G(z) -> 0; G learns to make D say 1 for G(z). D(x) and
D(G(z)) are the mean probabilities "real" the discriminator gave before its
update. Metrics stay on the device (0-d tensors): the loop averages them there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mlnb.dcgan.network import Discriminator, Generator
from mlnb.dcgan.settings import DcganSettings
from mlnb.training.device import DeviceSetup


def adam(parameters, settings: DcganSettings) -> torch.optim.Adam:
    return torch.optim.Adam(parameters, lr=settings.learning_rate, betas=(settings.beta1, settings.beta2))


class GanSteps:
    def __init__(self, generator: Generator, discriminator: Discriminator, settings: DcganSettings,
                 setup: DeviceSetup, train_generator=None, train_discriminator=None):
        """``train_*``: the (possibly torch.compile'd) modules the steps call; default the networks themselves."""
        self.generator, self.discriminator = generator, discriminator
        self.run_generator = train_generator or generator
        self.run_discriminator = train_discriminator or discriminator
        self.setup, self.generator_updates = setup, settings.generator_updates
        self.generator_optimizer = adam(generator.parameters(), settings)
        self.discriminator_optimizer = adam(discriminator.parameters(), settings)

    def discriminator_step(self, real: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        with self.setup.autocast():
            with torch.no_grad():
                fake = self.run_generator(z)
            real_logits = self.run_discriminator(real).float()
            fake_logits = self.run_discriminator(self.setup.images(fake)).float()
            loss_real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
            loss_fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
            loss = loss_real + loss_fake
        self.discriminator_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.discriminator_optimizer.step()
        return {"d_loss": loss.detach(), "d_loss_real": loss_real.detach(), "d_loss_fake": loss_fake.detach(),
                "d_real": torch.sigmoid(real_logits).mean().detach(),
                "d_fake": torch.sigmoid(fake_logits).mean().detach()}

    def generator_step(self, z: torch.Tensor) -> torch.Tensor:
        with self.setup.autocast():
            logits = self.run_discriminator(self.setup.images(self.run_generator(z))).float()
            loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        self.generator_optimizer.zero_grad(set_to_none=True)
        loss.backward()  # D's gradients from here are cleared before its next update
        self.generator_optimizer.step()
        return loss.detach()

    def step(self, real: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        metrics = self.discriminator_step(real, z)
        for _ in range(self.generator_updates):
            metrics["g_loss"] = self.generator_step(z)
        return metrics

    @torch.no_grad()
    def generate(self, z: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """G(z) in [-1, 1] with batch norm in inference mode (running statistics), in fp32."""
        self.generator.eval()
        try:
            return torch.cat([self.generator(z[start:start + batch_size]).float()
                              for start in range(0, len(z), batch_size)])
        finally:
            self.generator.train()
