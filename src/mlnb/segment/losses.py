"""Dice + cross-entropy, nnU-Net's loss, and the hard Dice of a batch for monitoring."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: keeps the soft Dice of a label absent from both prediction and batch at 1 instead of 0/0
SMOOTH = 1e-5


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus 1 - the soft Dice of each foreground label over the whole batch, averaged.

    ``logits`` (N, L, S, R, C) (computed in float32 here, whatever autocast gave), ``labels`` (N, S, R, C).
    """
    logits = logits.float()
    targets = labels.long()
    cross_entropy = F.cross_entropy(logits, targets)
    probabilities = logits.softmax(dim=1)[:, 1:]
    one_hot = F.one_hot(targets, logits.shape[1]).movedim(-1, 1)[:, 1:].to(probabilities.dtype)
    axes = (0, *range(2, logits.dim()))
    overlap = (probabilities * one_hot).sum(axes)
    total = probabilities.sum(axes) + one_hot.sum(axes)
    soft_dice = (2 * overlap + SMOOTH) / (total + SMOOTH)
    return cross_entropy + 1 - soft_dice.mean()


@torch.no_grad()
def hard_dice(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over the foreground labels of the Dice of the arg-max over the batch (1 where a label is in
    neither prediction nor truth), as a 0-d tensor on the device."""
    count = logits.shape[1]
    predicted = F.one_hot(logits.argmax(dim=1), count)[..., 1:]
    truth = F.one_hot(labels.long(), count)[..., 1:]
    axes = tuple(range(predicted.dim() - 1))
    overlap = (predicted * truth).sum(axes).float()
    total = (predicted.sum(axes) + truth.sum(axes)).float()
    return torch.where(total > 0, 2 * overlap / total.clamp(min=1), torch.ones_like(total)).mean()
