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

        return RandomPolicy(
            dims=self.dims, transforms=self.transforms, min_transforms=self.min_transforms,
            max_transforms=self.max_transforms, rotation_degrees=self.rotation_degrees,
            scale_range=self.scale_range, intensity_range=self.intensity_range,
            translation_pixels=self.translation_pixels, crop_margin=self.crop_margin,
            slice_shift_pixels=self.slice_shift_pixels, slice_shift_fraction=self.slice_shift_fraction,
        )

    def engine(self):
        from mlnb.augment.record import Engine

        return Engine(self.mode, self.order)

    def has_preview(self, copy: int) -> bool:
        return self.previews == "all" or (self.previews == "first" and copy == 0)
