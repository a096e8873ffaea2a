"""The 2x2 preview: written atomically, the same bytes for the same input."""

from __future__ import annotations

import numpy as np
from augment_helpers import make_pair
from PIL import Image

from mlnb.augment import Rotate, augment
from mlnb.augment.preview import write_preview


def test_previews_are_deterministic_pngs(tmp_path):
    for kind in ("grey", "rgb", "volume"):
        pair = make_pair(kind)
        out = augment(pair, [Rotate(5)])
        write_preview(tmp_path / f"{kind}.png", pair, out, "rotate(5)")
        write_preview(tmp_path / f"{kind}_again.png", pair, out, "rotate(5)")
        assert (tmp_path / f"{kind}.png").read_bytes() == (tmp_path / f"{kind}_again.png").read_bytes()
        picture = np.asarray(Image.open(tmp_path / f"{kind}.png"))
        assert picture.shape[:2] == (680, 640) and picture.std() > 0
    pair = make_pair("grey")
    pair.seg = None
    write_preview(tmp_path / "no_seg.png", pair, augment(pair, []), "none")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{k}{s}.png" for k in ("grey", "rgb", "volume") for s in ("", "_again")] + ["no_seg.png"])
