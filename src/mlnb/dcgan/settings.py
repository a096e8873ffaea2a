"""The ``dcgan`` config section as one typed object."""

from __future__ import annotations

import dataclasses

from mlnb.settings import Settings


@dataclasses.dataclass(frozen=True)
class DcganSettings(Settings):
    section = "dcgan"

    datasets: tuple[str, ...]
    z_dim: int
    gf: int
    df: int
    batch_size: int
    learning_rate: float
    beta1: float
    beta2: float
    generator_updates: int
    epochs: int
    compile: bool
    sample_every: int
    grid_side: int
    fid_samples: int
    fid_real_samples: int | None
    fid_checks: int
    face_rate_samples: int
    turing_images: int
