"""The from-scratch stage's config sections as typed values: ``gates`` and ``mlp`` (descriptions in
config.schema.yaml)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from mlnb.settings import Settings


@dataclasses.dataclass(frozen=True)
class GatesSettings(Settings):
    """The ``gates`` section, less ``names`` (the gates the pipeline trains, one job each)."""

    section: ClassVar[str] = "gates"
    layers: tuple[int, ...]
    transfers: tuple[str, ...]
    learning_rate: float
    momentum: float
    min_error: float
    max_iterations: int
    seeds: int
    log_every: int


@dataclasses.dataclass(frozen=True)
class MlpSettings(Settings):
    section: ClassVar[str] = "mlp"
    layers: tuple[int, ...]
    transfers: tuple[str, ...]
    learning_rate: float
    momentum: float
    batch_size: int
    epochs: int
    backend: str
    dtype: str
