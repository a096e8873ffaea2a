"""The ``segment`` config section as one typed object, and what each augmentation arm trains with."""

from __future__ import annotations

import dataclasses

from mlnb.augment.policy import RANDOM_TRANSFORMS, RandomPolicy
from mlnb.errors import ConfigError
from mlnb.settings import Settings

#: the arms that are not a single transform of the policy
WHOLE_ARMS = ("none", "offline", "onthefly")
ARMS = (*WHOLE_ARMS, *RANDOM_TRANSFORMS)


@dataclasses.dataclass(frozen=True)
class SegmentSettings(Settings):
    section = "segment"

    arms: tuple[str, ...]
    folds: int
    steps: int
    batch_size: int
    patch_size: tuple[int, int, int]
    base_width: int
    depth: int
    learning_rate: float
    foreground_share: float
    validation_every: int
    validation_patches: int
    overlap: float
    inference_batch: int
    compile: bool


def check_arm(arm: str) -> str:
    if arm not in ARMS:
        raise ConfigError(f"segment arm {arm!r}: expected one of {', '.join(ARMS)}")
    return arm


def arm_policy(arm: str, policy: RandomPolicy) -> RandomPolicy | None:
    """The random policy an arm applies on the fly: the whole ``policy`` (onthefly), one of its transforms
    alone (a single-transform arm, with that transform's ranges), or None (none, offline)."""
    if check_arm(arm) in WHOLE_ARMS:
        return policy if arm == "onthefly" else None
    return dataclasses.replace(policy, transforms=(arm,), min_transforms=1, max_transforms=1)
