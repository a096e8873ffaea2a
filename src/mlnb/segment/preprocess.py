"""Each labelled case preprocessed once, every case of a set packed into one pair of arrays beside an index.

A case is cropped to the body (the bounding box of the voxels above the volume's minimum, widened to hold
every labelled voxel), resampled to the set's median voxel spacing (images cubic, labels nearest; voxel
edges kept aligned, as ``F.interpolate(align_corners=False)`` does, so a prediction goes back exactly), and
z-scored with the mean and standard deviation of its body. Arrays are held as (slices, rows, cols): the
NIfTI's (i, j, k) with k first, the augment stage's (depth, H, W) layout, so the random policy's in-plane
transforms act on the (i, j) plane here as they do on the saved copies.

A pack is a folder: ``images.npy`` (float32) and ``labels.npy`` (uint8), every case's voxels flattened and
concatenated, and ``index.json`` with each case's shape and offset into them, and what inference needs to
go back to the original grid (the image's path, shape, affine and spacing, and the crop box). Training
loads it once (:mod:`mlnb.segment.patches`). The originals' pack comes from the heart index
(``mlnb prepare-heart``), the offline arm's from the augment stage's manifest, resampled to the
originals' spacing.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from mlnb.errors import DataError
from mlnb.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = "mlnb-segment-pack/1"
INDEX = "index.json"
IMAGES = "images.npy"
LABELS = "labels.npy"


@dataclasses.dataclass(frozen=True)
class Source:
    """One labelled volume to preprocess: its case name, the case it was made from, and its two files."""

    case: str
    origin: str
    image: Path
    label: Path


@dataclasses.dataclass
class Volume:
    """A loaded case in (slices, rows, cols) order, with its NIfTI image for the affine and header."""

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]
    nifti: Any


def to_internal(array: np.ndarray) -> np.ndarray:
    """NIfTI (i, j, k) -> (k, i, j): slices first."""
    return np.moveaxis(array, 2, 0)


def to_nifti(array: np.ndarray) -> np.ndarray:
    """(k, i, j) -> NIfTI (i, j, k)."""
    return np.moveaxis(array, 0, 2)


def load_volume(source: Source) -> Volume:
    """Both files of ``source``, checked: a 3-D image, a label map of its shape and grid holding integers."""
    import nibabel as nib

    arrays = {}
    for role, path in (("image", source.image), ("label", source.label)):
        try:
            nifti = nib.load(path)
            arrays[role] = (nifti, np.asarray(nifti.dataobj))
        except FileNotFoundError:
            raise DataError(f"{path}: {role} of case {source.case} is missing") from None
        except Exception as error:  # nibabel raises several types for broken files
            raise DataError(f"{path}: cannot read the {role} of case {source.case} ({error})") from error
    (image, voxels), (label, values) = arrays["image"], arrays["label"]
    if voxels.ndim != 3:
        raise DataError(f"{source.image}: expected a 3-D volume, got shape {voxels.shape}")
    if values.shape != voxels.shape:
        raise DataError(f"{source.label}: label shape {values.shape} differs from image shape {voxels.shape}")
    if not np.allclose(label.affine, image.affine, atol=1e-3):
        raise DataError(f"{source.label}: label affine differs from its image's ({source.image})")
    if not np.isfinite(voxels).all():
        raise DataError(f"{source.image}: the image holds NaN or infinite voxels")
    if not np.issubdtype(values.dtype, np.integer) and not np.array_equal(values, np.round(values)):
        raise DataError(f"{source.label}: label holds non-integer values")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{source.label}: labels must lie in 0..255, got {values.min()}..{values.max()}")
    zooms = image.header.get_zooms()[:3]
    return Volume(to_internal(voxels.astype(np.float32)), to_internal(values.astype(np.uint8)),
                  (float(zooms[2]), float(zooms[0]), float(zooms[1])), image)


def body_box(image: np.ndarray, labels: np.ndarray) -> tuple[tuple[int, int], ...]:
    """(start, stop) per axis of the voxels above the minimum, widened to every labelled voxel."""
    inside = (image > image.min()) | (labels > 0)
    if not inside.any():
        return tuple((0, size) for size in image.shape)
    box = []
    for axis in range(3):
        hits = np.flatnonzero(inside.any(axis=tuple(other for other in range(3) if other != axis)))
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def resampled_shape(shape, spacing, target) -> tuple[int, ...]:
    return tuple(max(1, int(round(size * have / want))) for size, have, want in zip(shape, spacing, target,
                                                                                   strict=True))


def resample(array: np.ndarray, shape: tuple[int, ...], order: int) -> np.ndarray:
    """``array`` on a grid of ``shape`` covering the same extent (voxel edges aligned)."""
    if array.shape == tuple(shape):
        return array.copy()
    factors = [want / have for want, have in zip(shape, array.shape, strict=True)]
    return ndimage.zoom(array, factors, order=order, mode="nearest", grid_mode=True)


def preprocess(volume: Volume, target: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(image, labels, record) of one case: cropped to the body, resampled to ``target`` spacing, z-scored."""
    box = body_box(volume.image, volume.labels)
    window = tuple(slice(start, stop) for start, stop in box)
    image, labels = volume.image[window], volume.labels[window]
    body = image > volume.image.min()
    values = image[body] if body.any() else image.ravel()
    mean, std = float(values.mean()), float(values.std())
    shape = resampled_shape(image.shape, volume.spacing, target)
    image = (resample(image, shape, order=3) - mean) / max(std, 1e-8)
    labels = resample(labels, shape, order=0)
    record = {"crop": [list(pair) for pair in box], "mean": mean, "std": std,
              "original_shape": list(volume.image.shape), "original_spacing": list(volume.spacing),
              "affine": volume.nifti.affine.tolist()}
    return image.astype(np.float32), labels, record


def median_spacing(volumes_spacing: Iterable[tuple[float, ...]]) -> tuple[float, float, float]:
    return tuple(float(value) for value in np.median(np.asarray(list(volumes_spacing)), axis=0))


def check_unique(sources: list[Source], origin: Path) -> None:
    seen: dict[str, int] = {}
    for number, source in enumerate(sources):
        if source.case in seen:
            raise DataError(f"{origin}: case {source.case!r} is listed twice (rows {seen[source.case] + 1} and "
                            f"{number + 1})")
        seen[source.case] = number
    if not sources:
        raise DataError(f"{origin}: lists no cases")


def _rows(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from None
    missing = [column for column in columns if rows and column not in rows[0]]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return rows


def heart_sources(index: Path) -> list[Source]:
    """The labelled cases of the heart index (``mlnb prepare-heart``)."""
    sources = [Source(row["case"], row["case"], Path(row["image"]), Path(row["label"]))
               for row in _rows(index, ("case", "image", "label"))]
    check_unique(sources, index)
    return sources


def copy_sources(manifest: Path) -> list[Source]:
    """The augment stage's saved copies (its manifest, ``mlnb gather-augment``), each named after its case."""
    rows = _rows(manifest, ("item", "copy", "image", "seg"))
    for number, row in enumerate(rows):
        if not row["seg"]:
            raise DataError(f"{manifest}: row {number + 1} ({row['image']}) has no segmentation")
    sources = [Source(f"{row['item']}_aug{row['copy']}", row["item"], Path(row["image"]), Path(row["seg"]))
               for row in rows]
    check_unique(sources, manifest)
    return sources


def write_pack(sources: list[Source], out: Path, target: tuple[float, ...] | None = None) -> dict[str, Any]:
    """Preprocess ``sources`` into the pack ``out`` (at ``target`` spacing, or their median); its index."""
    volumes = [load_volume(source) for source in sources]
    target = tuple(target) if target is not None else median_spacing(volume.spacing for volume in volumes)
    images, labels, cases, offset = [], [], [], 0
    for source, volume in zip(sources, volumes, strict=True):
        image, label, record = preprocess(volume, target)
        cases.append({"case": source.case, "origin": source.origin, "image": str(source.image),
                      "label": str(source.label), "shape": list(image.shape), "offset": offset,
                      "labels": np.unique(label).tolist(), **record})
        images.append(image.ravel())
        labels.append(label.ravel())
        offset += image.size
        log.info("%s: %s -> %s voxels of %s mm", source.case, volume.image.shape, image.shape,
                 "x".join(f"{value:.3g}" for value in target))
    index = {"format": FORMAT, "spacing": list(target), "labels": sorted({v for case in cases for v in case["labels"]}),
             "cases": cases}
    out.mkdir(parents=True, exist_ok=True)
    for name, arrays in ((IMAGES, images), (LABELS, labels)):
        with atomic_path(out / name) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.concatenate(arrays))
    with atomic_path(out / INDEX) as tmp:
        tmp.write_text(json.dumps(index, indent=2) + "\n")
    return index


@dataclasses.dataclass
class Pack:
    """A pack read back: its index and the flat arrays (memory-mapped)."""

    folder: Path
    index: dict[str, Any]
    images: np.ndarray
    labels: np.ndarray

    @classmethod
    def load(cls, folder: Path) -> Pack:
        folder = Path(folder)
        try:
            index = json.loads((folder / INDEX).read_text())
            images = np.load(folder / IMAGES, mmap_mode="r")
            labels = np.load(folder / LABELS, mmap_mode="r")
        except (OSError, ValueError) as error:
            raise DataError(f"{folder}: not a readable segmentation pack ({error})") from error
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise DataError(f"{folder / INDEX}: not a segmentation pack index (format {FORMAT} expected)")
        end = max((case["offset"] + int(np.prod(case["shape"])) for case in index["cases"]), default=0)
        if len(images) != end or len(labels) != end:
            raise DataError(f"{folder}: the arrays hold {len(images)} and {len(labels)} voxels, the index {end}")
        return cls(folder, index, images, labels)

    @property
    def cases(self) -> list[dict[str, Any]]:
        return self.index["cases"]

    @property
    def names(self) -> list[str]:
        return [case["case"] for case in self.cases]

    def case(self, name: str) -> dict[str, Any]:
        for case in self.cases:
            if case["case"] == name:
                return case
        raise DataError(f"{self.folder / INDEX}: no case {name!r}")

    def arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(image, labels) of one case, (slices, rows, cols)."""
        case = self.case(name)
        window = slice(case["offset"], case["offset"] + int(np.prod(case["shape"])))
        return (np.array(self.images[window]).reshape(case["shape"]),
                np.array(self.labels[window]).reshape(case["shape"]))
