"""Statistics and a preview image of each prepared dataset, written and logged to MLflow (``mlnb log-data``)."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np

from mlnb import tracking
from mlnb.data.celeba_format import FILES, FRAME_HEIGHT, FRAME_WIDTH
from mlnb.data.mnist import read_mnist_npz
from mlnb.errors import DataError, describe
from mlnb.io import atomic_path
from mlnb.preview import image_grid, to_uint8

LABEL_COLOURS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48]], np.uint8)


def mnist_summary(npz_path: Path) -> tuple[dict, np.ndarray]:
    data = read_mnist_npz(npz_path)
    x_train, y_train, x_test = data.x_train, data.y_train, data.x_test
    stats = {
        "train_images": len(x_train),
        "test_images": len(x_test),
        "pixel_mean": float(x_train.mean()),
        "pixel_std": float(x_train.std()),
        **{f"train_class_{digit}": int((y_train == digit).sum()) for digit in range(10)},
    }
    # Ten examples of each digit, one digit per row.
    examples = [x_train[np.flatnonzero(y_train == digit)[:10]] for digit in range(10)]
    tiles = [row if len(row) == 10 else np.concatenate([row, np.zeros((10 - len(row), 28, 28), np.uint8)])
             for row in examples]
    return stats, image_grid(np.concatenate(tiles), columns=10, fill=0)


def read_index(path: Path, what: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of an index CSV that prepare-* wrote, refusing a file without the ``columns`` used here."""
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read the {what} ({describe(error)})") from error
    if missing := [column for column in columns if column not in (reader.fieldnames or [])]:
        raise DataError(f"{path}: not a {what} (no column {', '.join(missing)})")
    if not rows:
        raise DataError(f"{path}: the {what} has no rows")
    return rows


def celeba_summary(index_path: Path, zip_path: Path, preview_count: int = 64) -> tuple[dict, np.ndarray]:
    rows = read_index(index_path, "CelebA index", ("member", "partition"))
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f"{zip_path}: not a readable zip archive ({describe(error)})") from error
    stats = {"images": len(rows), "zip_bytes": zip_path.stat().st_size}
    for split in ("train", "valid", "test"):
        stats[f"partition_{split}"] = sum(row["partition"] == split for row in rows)
    tiles = []
    with archive:
        for row in rows:
            if len(tiles) == preview_count:
                break
            try:
                encoded = archive.read(row["member"])
            except KeyError as error:
                raise DataError(f"{zip_path}: no member {row['member']!r}, which {index_path} lists") from error
            image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_COLOR)
            if image is not None and image.shape[:2] == (FRAME_HEIGHT, FRAME_WIDTH):
                half = cv2.resize(image, (FRAME_WIDTH // 2, FRAME_HEIGHT // 2), interpolation=cv2.INTER_AREA)
                tiles.append(cv2.cvtColor(half, cv2.COLOR_BGR2RGB))
    stats["preview_decoded"] = len(tiles)
    if not tiles:
        raise DataError(f"{zip_path}: none of the first images decodes as a {FRAME_WIDTH}x{FRAME_HEIGHT} JPEG; "
                        f"is this {FILES['images']}?")
    return stats, image_grid(np.stack(tiles), columns=8)


def overlay(image_slice: np.ndarray, label_slice: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    grey = np.repeat(to_uint8(image_slice)[..., None], 3, axis=2).astype(np.float64)
    colours = LABEL_COLOURS[np.clip(label_slice, 0, len(LABEL_COLOURS) - 1)].astype(np.float64)
    mixed = np.where(label_slice[..., None] > 0, (1 - alpha) * grey + alpha * colours, grey)
    return np.round(mixed).astype(np.uint8)


def fit_into_square(image: np.ndarray, side: int) -> np.ndarray:
    """Scale ``image`` to fit a ``side`` x ``side`` tile, keeping its aspect ratio (black padding)."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)
    tile = np.zeros((side, side, *image.shape[2:]), image.dtype)
    top, left = (side - size[1]) // 2, (side - size[0]) // 2
    tile[top:top + size[1], left:left + size[0]] = resized
    return tile


def _voxels(path: str, index_path: Path, dtype) -> np.ndarray:
    try:
        return np.asarray(nib.load(path).dataobj, dtype=dtype)
    except Exception as error:  # nibabel raises many types for missing or broken files
        raise DataError(f"{path} (listed in {index_path}): cannot read it as NIfTI ({describe(error)})") from error


def heart_summary(index_path: Path, tile: int = 160) -> tuple[dict, np.ndarray]:
    rows = read_index(index_path, "heart index", ("image", "label"))
    stats: dict[str, float] = {"cases": len(rows)}
    label_voxels: dict[int, int] = {}
    tiles = []
    for row in rows:
        image = _voxels(row["image"], index_path, np.float32)
        label = _voxels(row["label"], index_path, None).astype(np.int64)
        for value, count in zip(*np.unique(label, return_counts=True), strict=True):
            label_voxels[int(value)] = label_voxels.get(int(value), 0) + int(count)
        middle = image.shape[2] // 2
        view = overlay(np.rot90(image[:, :, middle]), np.rot90(label[:, :, middle]))
        tiles.append(fit_into_square(view, tile))
    stats.update({f"label_{value}_voxels": count for value, count in sorted(label_voxels.items())})
    return stats, image_grid(np.stack(tiles), columns=min(len(tiles), 5))


def log_data(mnist: Path, celeba_index: Path, celeba_zip: Path, heart_index: Path, out: Path,
             tracking_options: tracking.TrackingOptions = tracking.TrackingOptions()) -> dict[str, dict]:
    """Each dataset's statistics and preview: ``out``/summary.json and ``out``/<dataset>_preview.png, and one
    MLflow run "data" (as ``tracking_options`` says) holding them; the statistics, by dataset."""
    summaries = {
        "mnist": mnist_summary(mnist),
        "celeba": celeba_summary(celeba_index, celeba_zip),
        "heart": heart_summary(heart_index),
    }
    inputs = {"mnist": mnist, "celeba_index": celeba_index, "celeba_zip": celeba_zip, "heart_index": heart_index}
    with tracking.tracked_run(tracking_options, "data", params={**inputs, "out": out}, inputs=inputs) as tracker:
        for name, (stats, preview) in summaries.items():
            with atomic_path(out / f"{name}_preview.png") as tmp:
                bgr = cv2.cvtColor(preview, cv2.COLOR_RGB2BGR) if preview.ndim == 3 else preview
                if not cv2.imwrite(str(tmp), bgr):
                    raise DataError(f"{out / f'{name}_preview.png'}: OpenCV could not write the preview")
            tracker.log_metrics({f"{name}.{key}": value for key, value in stats.items()})
            tracker.log_image(preview, f"previews/{name}.png")
        summary = {name: stats for name, (stats, _) in summaries.items()}
        tracker.log_dict(summary, "summary.json")
        with atomic_path(out / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
