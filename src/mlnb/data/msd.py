"""Medical Segmentation Decathlon (Task02_Heart): safe extraction and a checked index.

The archive holds ``<Task>/dataset.json``, ``imagesTr/`` and ``labelsTr/``. Every
training pair listed in ``dataset.json`` is checked: both files exist and load,
the image is 3-D, the label has the image's shape and grid, and holds integers.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from mlnb.data.archive import safe_extract
from mlnb.errors import DataError
from mlnb.io import atomic_path, file_md5

#: image_md5/label_md5 let the workflow rerun exactly the jobs whose volumes changed
#: (tar members keep their old mtimes, so a changed volume can look older than its outputs).
INDEX_COLUMNS = ("case", "image", "label", "image_md5", "label_md5", "shape", "spacing", "labels")


def find_dataset_json(root: Path) -> Path:
    candidates = sorted(root.glob("dataset.json")) + sorted(root.glob("*/dataset.json"))
    if not candidates:
        raise DataError(f"{root}: no dataset.json found (expected an MSD task folder)")
    return candidates[0]


def _load(path: Path, role: str, case: str) -> nib.Nifti1Image:
    if not path.is_file():
        raise DataError(f"{path}: {role} of case {case} is missing")
    try:
        return nib.load(path)
    except Exception as error:  # nibabel raises several types for broken files
        raise DataError(f"{path}: cannot read {role} of case {case} as NIfTI ({error})") from error


def check_pair(image_path: Path, label_path: Path, case: str) -> dict[str, str]:
    """Check one image/label pair; return its index row (without paths)."""
    image = _load(image_path, "image", case)
    label = _load(label_path, "label", case)
    if len(image.shape) != 3:
        raise DataError(f"{image_path}: expected a 3-D volume, got shape {image.shape}")
    if label.shape != image.shape:
        raise DataError(f"{label_path}: label shape {label.shape} differs from image shape {image.shape} ({image_path})")
    if not np.allclose(label.affine, image.affine, atol=1e-3):
        raise DataError(f"{label_path}: label affine differs from its image's ({image_path})")
    try:
        values = np.asarray(label.dataobj)
    except Exception as error:
        raise DataError(f"{label_path}: label data unreadable ({error})") from error
    if not np.issubdtype(values.dtype, np.integer) and not np.array_equal(values, np.round(values)):
        raise DataError(f"{label_path}: label holds non-integer values")
    labels = np.unique(values).astype(np.int64)
    return {
        "case": case,
        "shape": "x".join(str(n) for n in image.shape),
        "spacing": "x".join(f"{z:.4g}" for z in image.header.get_zooms()[:3]),
        "labels": " ".join(str(v) for v in labels),
    }


def index_task(task_dir: Path) -> list[dict[str, str]]:
    dataset_json = find_dataset_json(task_dir)
    root = dataset_json.parent
    try:
        training = json.loads(dataset_json.read_text())["training"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DataError(f"{dataset_json}: no readable 'training' list ({error})") from error
    if not training:
        raise DataError(f"{dataset_json}: the 'training' list is empty")
    rows = []
    for entry in training:
        if not isinstance(entry, dict) or "image" not in entry:
            raise DataError(f"{dataset_json}: training entry {entry!r} has no 'image'")
        case = Path(entry["image"]).name.removesuffix(".nii.gz").removesuffix(".nii")
        if "label" not in entry:
            raise DataError(f"{dataset_json}: case {case} ({entry['image']}) has no label entry")
        image_path = Path(os.path.normpath(root / entry["image"]))
        label_path = Path(os.path.normpath(root / entry["label"]))
        row = check_pair(image_path, label_path, case)
        rows.append({**row, "image": str(image_path), "label": str(label_path),
                     "image_md5": file_md5(image_path), "label_md5": file_md5(label_path)})
    return rows


def prepare(archive: Path, extract_to: Path, out: Path) -> list[dict[str, str]]:
    safe_extract(archive, extract_to)
    rows = index_task(extract_to)
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def configure_parser(parser) -> None:
    parser.add_argument("--archive", type=Path, required=True, help="MSD task tar (e.g. Task02_Heart.tar)")
    parser.add_argument("--extract-to", type=Path, required=True, help="folder to extract into")
    parser.add_argument("--out", type=Path, required=True, help="index CSV to write")


def run(args) -> int:
    rows = prepare(args.archive, args.extract_to, args.out)
    print(f"MSD: {len(rows)} image/label pairs checked -> {args.out}")
    return 0
