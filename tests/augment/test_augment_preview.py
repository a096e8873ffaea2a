"""The 2x2 preview: written atomically, the same bytes for the same input, labels as colour overlays."""

from __future__ import annotations

import numpy as np
from PIL import Image

from mlnb.augment import Rotate, augment
from mlnb.augment.preview import CELL, LABEL_COLOURS, OVERLAY_ALPHA, is_own_preview, preview_image, write_preview
from tests.augment.augment_helpers import make_pair


def panels(picture: np.ndarray) -> dict[str, np.ndarray]:
    """The four CELL x CELL panels of a preview (below its caption)."""
    grid = picture[picture.shape[0] - (2 * CELL + 6):]
    cell = {(row, col): grid[2 + row * (CELL + 2):2 + row * (CELL + 2) + CELL,
                             2 + col * (CELL + 2):2 + col * (CELL + 2) + CELL] for row in (0, 1) for col in (0, 1)}
    return {"original": cell[0, 0], "original_labels": cell[0, 1],
            "augmented": cell[1, 0], "augmented_labels": cell[1, 1]}


def test_previews_are_deterministic_marked_pngs(tmp_path):
    for kind in ("grey", "rgb", "volume"):
        pair = make_pair(kind)
        out = augment(pair, [Rotate(5)])
        write_preview(tmp_path / f"{kind}.png", pair, out, "rotate(5)")
        write_preview(tmp_path / f"{kind}_again.png", pair, out, "rotate(5)")
        assert (tmp_path / f"{kind}.png").read_bytes() == (tmp_path / f"{kind}_again.png").read_bytes()
        assert is_own_preview(tmp_path / f"{kind}.png")
        picture = np.asarray(Image.open(tmp_path / f"{kind}.png"))
        assert picture.shape[1] == 2 * CELL + 6 and picture.std() > 0
    pair = make_pair("grey")
    pair.seg = None
    write_preview(tmp_path / "no_seg.png", pair, augment(pair, []), "none")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"{k}{s}.png" for k in ("grey", "rgb", "volume") for s in ("", "_again")] + ["no_seg.png"])
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "plain.png")
    assert not is_own_preview(tmp_path / "plain.png")


def test_labels_are_coloured_over_the_image_and_nothing_else_changes():
    pair = make_pair("grey", shape=(64, 64))  # 64 divides the cell: each pixel is a 4x4 block
    picture = panels(preview_image(pair, augment(pair, []), "identity"))
    plain, labelled = picture["original"].astype(int), picture["original_labels"].astype(int)
    assert (plain[..., 0] == plain[..., 1]).all() and (plain[..., 1] == plain[..., 2]).all()  # grey
    foreground = np.kron(pair.seg != 0, np.ones((4, 4), bool))
    np.testing.assert_array_equal(labelled[~foreground], plain[~foreground])
    # label 1 takes the first colour, label 2 the second, blended at OVERLAY_ALPHA
    labels = np.kron(pair.seg, np.ones((4, 4), np.uint8))
    for value in (1, 2):
        where = labels == value
        under = plain[where].astype(np.float32)  # the preview blends in float32
        expected = np.round((1 - OVERLAY_ALPHA) * under + OVERLAY_ALPHA * LABEL_COLOURS[value - 1])
        np.testing.assert_array_equal(labelled[where], expected)
    np.testing.assert_array_equal(picture["augmented_labels"], picture["original_labels"])
