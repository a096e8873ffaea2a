"""The augment stage's settings: config.yaml's ``augment`` section as one typed object.

Defaults, ranges and descriptions live in ``config.schema.yaml`` only; the
random policy and the engine are built from this object.
"""

from __future__ import annotations

import dataclasses

from mlnb.settings import Settings

#: which copies get a 2x2 preview PNG
PREVIEW_CHOICES = ("all", "first", "none")


@dataclasses.dataclass(frozen=True)
class AugmentSettings(Settings):
    section = "augment"

    copies: int
    dims: tuple[int, ...] | None
    mode: str
    order: int
    transforms: tuple[str, ...]
    min_transforms: int
    max_transforms: int
    rotation_degrees: float
    scale_range: tuple[float, float]
    intensity_range: tuple[float, float]
    translation_pixels: int
    slice_shift_pixels: int
    slice_shift_fraction: float
    crop_margin: int
    previews: str
    threads: int

    def policy(self):
        """The random policy these settings describe (its cross-field checks run here)."""
        from mlnb.augment.policy import RandomPolicy

        return RandomPolicy(**{field.name: getattr(self, field.name) for field in dataclasses.fields(RandomPolicy)})

    def engine(self):
        from mlnb.augment.record import Engine

        return Engine(self.mode, self.order)

    def has_preview(self, copy: int) -> bool:
        return self.previews == "all" or (self.previews == "first" and copy == 0)
