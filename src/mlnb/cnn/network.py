"""The blog's MNIST CNN (07-cnn-tensorflow) in torch.

Two 3x3 convolutions of 16 kernels ('same' padding, ReLU), each followed by a
2x2 max-pool, a dense layer of 1024 (ReLU), optionally batch norm and dropout
on it (the blog's second rung), and 10 logits.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE = 28
NUM_CLASSES = 10


class SeededDropout(nn.Module):
    """Dropout whose masks come from a given torch.Generator (not the global RNG), so runs reproduce
    and a checkpoint can carry the generator's state.

    ``shard=(rank, size)``: the input is slice ``rank`` of a global batch split into ``size`` (data-parallel
    training): the mask is drawn for the global batch and sliced the same way, so every process's generator
    stays in step and the masks are those of a single-process run.
    """

    def __init__(self, rate: float, generator: torch.Generator | None, shard: tuple[int, int] = (0, 1)):
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        if not 0 <= shard[0] < shard[1]:
            raise ValueError(f"dropout shard {shard}: expected (rank, size) with 0 <= rank < size")
        self.rate, self.generator, self.shard = rate, generator, shard

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        rank, size = self.shard
        keep = x.new_empty((len(x) * size, *x.shape[1:])).bernoulli_(1.0 - self.rate, generator=self.generator)
        return x * keep[rank * len(x):(rank + 1) * len(x)] / (1.0 - self.rate)


def _glorot(module: nn.Module) -> None:
    """TensorFlow's default initialisation, as in the blog: Glorot-uniform weights, zero biases."""
    if isinstance(module, nn.Conv2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class BlogCNN(nn.Module):
    """N x 1 x 28 x 28 images in [0, 1] -> N x 10 logits, initialised like TensorFlow's layers."""

    def __init__(self, kernels: int = 16, dense: int = 1024, batch_norm: bool = False, dropout: float = 0.0,
                 dropout_generator: torch.Generator | None = None, batch_norm_decay: float = 0.99,
                 dropout_shard: tuple[int, int] = (0, 1)):
        """``batch_norm_decay``: TensorFlow's decay of the running statistics (the blog's 0.99;
        torch's momentum is 1 - decay); ``dropout_shard``: see :class:`SeededDropout`."""
        super().__init__()
        if kernels < 1 or dense < 1:
            raise ValueError(f"kernels ({kernels}) and dense units ({dense}) must be >= 1")
        if not 0.0 <= batch_norm_decay < 1.0:
            raise ValueError(f"batch_norm_decay must be in [0, 1), got {batch_norm_decay}")
        self.features = nn.Sequential(
            nn.Conv2d(1, kernels, 3, padding=1), nn.ReLU(),        # N x 16 x 28 x 28
            nn.MaxPool2d(2),                                        # N x 16 x 14 x 14
            nn.Conv2d(kernels, kernels, 3, padding=1), nn.ReLU(),  # N x 16 x 14 x 14
            nn.MaxPool2d(2),                                        # N x 16 x 7 x 7
            nn.Flatten(),                                           # N x 784
        )
        flat = kernels * (IMAGE_SIZE // 4) ** 2
        self.dense = nn.Sequential(
            nn.Linear(flat, dense), nn.ReLU(),                      # N x 1024
            nn.BatchNorm1d(dense, momentum=1.0 - batch_norm_decay) if batch_norm else nn.Identity(),
            SeededDropout(dropout, dropout_generator, dropout_shard),  # N x 1024
        )
        self.logits = nn.Linear(dense, NUM_CLASSES)                 # N x 10
        self.apply(_glorot)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or tuple(images.shape[1:]) != (1, IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"BlogCNN expects N x 1 x {IMAGE_SIZE} x {IMAGE_SIZE} images, "
                             f"got shape {tuple(images.shape)}")
        return self.logits(self.dense(self.features(images)))
