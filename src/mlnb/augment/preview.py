"""The 2x2 preview of one copy: original and augmented, each plain and with its labels in colour.

Drawn with numpy and Pillow (no plotting library: a few milliseconds a copy). The
middle slice of a volume is shown; each panel is scaled (nearest neighbour) into
a square cell; labels are blended over the image in fixed colours, one per label
value, the same in both rows. The caption is drawn with Pillow's built-in font.
The PNG carries a text chunk naming this command, by which a later run knows the
preview is its own (see ``record.remove_stale_copies``); no timestamps, so the
same input gives the same bytes.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from mlnb.augment.pair import Augmented, Pair
from mlnb.io import atomic_path
from mlnb.preview import image_grid

CELL = 256
#: the PNG text chunk that marks a preview as written by this command
MARK_KEY, MARK_VALUE = "Software", "mlnb augment preview"
#: overlay colours of the foreground labels, in the order of their values (then repeated)
LABEL_COLOURS = np.array([(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
                          (145, 30, 180), (70, 240, 240), (240, 50, 230)], dtype=np.float32)
OVERLAY_ALPHA = 0.45
CAPTION_WIDTH = 2 * CELL // 6  # characters per line of the 6-px-wide built-in font
LINE_HEIGHT = 12


def _middle(array: np.ndarray, kind: str) -> np.ndarray:
    """The plane to show: the middle slice of a volume, the image itself otherwise."""
    return array[:, :, array.shape[2] // 2] if kind == "volume" else array


def _display(plane: np.ndarray) -> np.ndarray:
    """An image plane as HxWx3 uint8: grey over a robust range (interpolation overshoot does not wash it out)."""
    plane = np.asarray(plane, dtype=np.float32)
    if plane.ndim == 2:
        low, high = np.percentile(plane, (0.5, 99.5))
    else:
        low, high = float(plane.min()), float(plane.max())
    scaled = np.zeros(plane.shape, np.uint8) if high <= low else np.round(
        np.clip((plane - low) / (high - low), 0, 1) * 255).astype(np.uint8)
    return np.repeat(scaled[:, :, None], 3, axis=2) if scaled.ndim == 2 else scaled


def _overlay(picture: np.ndarray, labels: np.ndarray | None, values: np.ndarray) -> np.ndarray:
    if labels is None:
        return picture
    rank = np.searchsorted(values, labels)  # label value -> its place among the foreground values
    foreground = labels != 0
    colours = LABEL_COLOURS[rank[foreground] % len(LABEL_COLOURS)]
    blended = picture.astype(np.float32)
    blended[foreground] = (1 - OVERLAY_ALPHA) * blended[foreground] + OVERLAY_ALPHA * colours
    return np.round(blended).astype(np.uint8)


def _cell(picture: np.ndarray) -> np.ndarray:
    """``picture`` scaled by nearest neighbour to fit a CELL x CELL square, centred on black."""
    height, width = picture.shape[:2]
    scale = CELL / max(height, width)
    rows = np.minimum((np.arange(round(height * scale)) / scale).astype(int), height - 1)
    cols = np.minimum((np.arange(round(width * scale)) / scale).astype(int), width - 1)
    scaled = picture[rows][:, cols]
    cell = np.zeros((CELL, CELL, 3), np.uint8)
    top, left = (CELL - scaled.shape[0]) // 2, (CELL - scaled.shape[1]) // 2
    cell[top:top + scaled.shape[0], left:left + scaled.shape[1]] = scaled
    return cell


def preview_image(original: Pair, augmented: Augmented, caption: str) -> np.ndarray:
    """The preview as an HxWx3 uint8 array: caption, then [original | labels] over [augmented | labels]."""
    from PIL import Image, ImageDraw

    segs = [None if seg is None else _middle(seg, kind)
            for seg, kind in ((original.seg, original.kind), (augmented.seg, augmented.kind))]
    values = np.unique(np.concatenate([seg[seg != 0].ravel() for seg in segs if seg is not None] or [[]]))
    cells = []
    for image, kind, seg in ((original.image, original.kind, segs[0]), (augmented.image, augmented.kind, segs[1])):
        picture = _display(_middle(image, kind))
        cells += [_cell(picture), _cell(_overlay(picture, seg, values))]
    grid = image_grid(np.stack(cells), columns=2, padding=2, fill=0)
    lines = textwrap.wrap(caption, CAPTION_WIDTH) or [""]
    lines.append(f"original {tuple(original.image.shape)} -> augmented {tuple(augmented.image.shape)}")
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + LINE_HEIGHT * len(lines) + 4))
    draw = ImageDraw.Draw(canvas)
    for number, line in enumerate(lines):
        draw.text((4, 2 + LINE_HEIGHT * number), line, fill=(255, 255, 255))
    canvas.paste(Image.fromarray(grid), (0, LINE_HEIGHT * len(lines) + 4))
    return np.asarray(canvas)


def write_preview(path: Path, original: Pair, augmented: Augmented, caption: str) -> None:
    """Write the preview PNG to ``path`` (atomically), marked as this command's."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(MARK_KEY, MARK_VALUE)
    with atomic_path(path) as tmp:
        picture = Image.fromarray(preview_image(original, augmented, caption))
        picture.save(tmp, format="PNG", pnginfo=info, compress_level=1)  # level 6 took 3x longer than drawing


def is_own_preview(path: Path) -> bool:
    """True when ``path`` is a PNG that :func:`write_preview` wrote."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            return picture.format == "PNG" and picture.info.get(MARK_KEY) == MARK_VALUE
    except (OSError, UnidentifiedImageError):
        return False
