"""The faces stage's settings: config.yaml's ``faces`` section as one typed object (defaults: the schema)."""

from __future__ import annotations

import dataclasses

from mlnb.settings import Settings


@dataclasses.dataclass(frozen=True)
class FacesSettings(Settings):
    section = "faces"

    size: int
    landmarks: str
    upsample: int
    min_side: int
    shards: int
    threads: int
    preview: int
