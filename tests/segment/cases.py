"""Small synthetic labelled volumes written as an MSD-like set: NIfTI pairs and the heart index's columns.

A case holds thin bright bars (label 1, along the columns) among round blobs of the same brightness (label
0) in noise; ``transposed`` cases have their bars along the rows (the plane transposed: a quarter turn and
a flip), a pose that no untransposed case shows.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mlnb.rng import generator
from mlnb.segment.preprocess import to_nifti

SHAPE = (8, 32, 32)  # slices, rows, cols
SPACING = (2.0, 1.0, 1.0)


def bars_and_blobs(seed: int, shape=SHAPE, transposed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = generator(seed, "tests", "segment")
    slices, rows, cols = shape
    image = rng.normal(0.0, 0.15, shape).astype(np.float32) + 1.0
    labels = np.zeros(shape, np.uint8)
    grid_rows, grid_cols = np.mgrid[:rows, :cols]
    for _ in range(3):
        row, col = int(rng.integers(3, rows - 3)), int(rng.integers(4, cols - 16))
        labels[1:-1, row:row + 2, col:col + 12] = 1
    for _ in range(3):
        row, col = (int(value) for value in rng.integers(5, rows - 5, size=2))
        blob = (grid_rows - row) ** 2 + (grid_cols - col) ** 2 <= 9
        image[1:-1, blob & (labels[1] == 0)] = 3.0
    image[labels == 1] = 3.0
    if transposed:
        image, labels = image.transpose(0, 2, 1).copy(), labels.transpose(0, 2, 1).copy()
    return image, labels


def write_case(folder: Path, case: str, image: np.ndarray, labels: np.ndarray, spacing=SPACING,
               label_affine=None) -> tuple[Path, Path]:
    """``image`` and ``labels`` (slices, rows, cols) as ``<case>.nii.gz`` and ``<case>_seg.nii.gz``."""
    import nibabel as nib

    affine = np.diag([spacing[1], spacing[2], spacing[0], 1.0])
    paths = folder / f"{case}.nii.gz", folder / f"{case}_seg.nii.gz"
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(to_nifti(image), affine), paths[0])
    nib.save(nib.Nifti1Image(to_nifti(labels), affine if label_affine is None else label_affine), paths[1])
    return paths


def write_index(path: Path, rows: list[tuple[str, Path, Path]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "image", "label"])
        writer.writerows([(case, str(image), str(label)) for case, image, label in rows])
    return path


def write_set(folder: Path, count: int, transposed: tuple[str, ...] = ()) -> Path:
    """``count`` cases case_00.. under ``folder`` and their index (``transposed`` names turned cases)."""
    rows = []
    for number in range(count):
        case = f"case_{number:02d}"
        image, labels = bars_and_blobs(number, transposed=case in transposed)
        rows.append((case, *write_case(folder / "volumes", case, image, labels)))
    return write_index(folder / "index.csv", rows)
