"""The ``cnn`` config section and one rung of the ladder, as typed values (descriptions in config.schema.yaml)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mlnb.errors import ConfigError
from mlnb.settings import Settings


@dataclasses.dataclass(frozen=True)
class CnnVariant:
    """One rung of the ladder (schema: definitions.cnn_variant; every key defines the run, none is operational)."""

    steps: int
    batch_size: int
    optimizer: str
    learning_rate: float
    momentum: float
    weight_decay: float
    schedule: str
    batch_norm: bool
    batch_norm_decay: float
    dropout: float
    label_smoothing: float
    compile: bool
    eval_every: int


@dataclasses.dataclass(frozen=True)
class CnnSettings(Settings):
    section = "cnn"

    variants: dict
    eval_batch: int
    target_accuracy: float
    blog_accuracy: dict

    def variant(self, name: str) -> CnnVariant:
        if name not in self.variants:
            known = ", ".join(sorted(self.variants)) or "none"
            raise ConfigError(f"cnn.variants: no variant {name!r} (configured: {known})")
        return CnnVariant(**self.variants[name])

    def defining_for(self, name: str) -> dict[str, Any]:
        """What one variant's run depends on: the section's defining keys, with that variant's definition alone
        (editing another variant changes nothing here)."""
        return {**self.defining(), "variants": {name: self.variants[name]}}
