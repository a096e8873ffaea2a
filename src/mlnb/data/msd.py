"""Medical Segmentation Decathlon (Task02_Heart): safe extraction and a checked index.

The archive holds ``<Task>/dataset.json``, ``imagesTr/`` and ``labelsTr/``. Every
training pair listed in ``dataset.json`` is checked: both paths are strings that
resolve inside the extracted folder, the case names are unique and safe for file
and job names, both files load with all their voxels (no truncated data, no NaN),
the image is 3-D, the label has the image's shape and grid, and holds integers.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np

from mlnb.data.archive import safe_extract
from mlnb.errors import DataError
from mlnb.io import atomic_path, file_md5

#: image_md5/label_md5 let the workflow rerun exactly the jobs whose volumes changed
#: (tar members keep their old mtimes, so a changed volume can look older than its outputs).
INDEX_COLUMNS = ("case", "image", "label", "image_md5", "label_md5", "shape", "spacing", "labels")
#: what a case name may hold: it names output folders and the workflow's {case} wildcard
CASE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def find_dataset_json(root: Path) -> Path:
    candidates = sorted(root.glob("dataset.json")) + sorted(root.glob("*/dataset.json"))
    if not candidates:
        raise DataError(f"{root}: no dataset.json found (expected an MSD task folder)")
    if len(candidates) > 1:
        raise DataError(f"{root}: several dataset.json files ({', '.join(map(str, candidates))}); "
                        "extract one MSD task per folder")
    return candidates[0]


def _load(path: Path, role: str, case: str) -> tuple[nib.Nifti1Image, np.ndarray]:
    """The volume and all its voxels: a header alone hides truncated data."""
    if not path.is_file():
        raise DataError(f"{path}: {role} of case {case} is missing")
    try:
        volume = nib.load(path)
    except Exception as error:  # nibabel raises several types for broken files
        raise DataError(f"{path}: cannot read {role} of case {case} as NIfTI ({error})") from error
    try:
        voxels = np.asarray(volume.dataobj)
    except Exception as error:  # EOFError, zlib.error, ValueError ... for cut or damaged data
        raise DataError(f"{path}: {role} data of case {case} is truncated or unreadable "
                        f"({type(error).__name__}: {error})") from error
    if np.issubdtype(voxels.dtype, np.inexact) and not (finite := np.isfinite(voxels)).all():
        raise DataError(f"{path}: {role} of case {case} holds {int((~finite).sum())} NaN or infinite voxels")
    return volume, voxels


def check_pair(image_path: Path, label_path: Path, case: str) -> dict[str, str]:
    """Check one image/label pair; return its index row (without paths and checksums)."""
    image, _ = _load(image_path, "image", case)
    label, values = _load(label_path, "label", case)
    if len(image.shape) != 3:
        raise DataError(f"{image_path}: expected a 3-D volume, got shape {image.shape}")
    if label.shape != image.shape:
        raise DataError(f"{label_path}: label shape {label.shape} differs from image shape {image.shape} "
                        f"({image_path})")
    if not np.allclose(label.affine, image.affine, atol=1e-3):
        raise DataError(f"{label_path}: label affine differs from its image's ({image_path})")
    if not np.issubdtype(values.dtype, np.integer) and not np.array_equal(values, np.round(values)):
        raise DataError(f"{label_path}: label holds non-integer values")
    labels = np.unique(values).astype(np.int64)
    return {
        "case": case,
        "shape": "x".join(str(n) for n in image.shape),
        "spacing": "x".join(f"{z:.4g}" for z in image.header.get_zooms()[:3]),
        "labels": " ".join(str(v) for v in labels),
    }


def _entry_path(entry: dict, key: str, where: str, root: Path, extracted: Path) -> Path:
    """The file an entry names, which must be a string that resolves inside ``extracted``."""
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}.{key} must be a file path (a non-empty string), got {value!r}")
    path = Path(os.path.normpath(root / value))
    if not path.resolve().is_relative_to(extracted.resolve()):
        raise DataError(f"{where}.{key} {value!r} points outside the extracted folder {extracted}")
    return path


def _case_name(image_path: Path, where: str) -> str:
    case = image_path.name.removesuffix(".nii.gz").removesuffix(".nii")
    if not CASE_NAME.fullmatch(case):
        raise DataError(f"{where}.image: case name {case!r} may hold only letters, digits, '_', '.' and '-'")
    return case


def index_task(task_dir: Path) -> list[dict[str, str]]:
    """Check every training pair that ``dataset.json`` (in ``task_dir`` or one folder below) lists."""
    dataset_json = find_dataset_json(task_dir)
    root = dataset_json.parent
    try:
        training = json.loads(dataset_json.read_text())["training"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise DataError(f"{dataset_json}: no readable 'training' list ({type(error).__name__}: {error})") from error
    if not isinstance(training, list):
        raise DataError(f"{dataset_json}: 'training' must be a list of {{image, label}} entries, "
                        f"got {type(training).__name__}")
    if not training:
        raise DataError(f"{dataset_json}: the 'training' list is empty")
    rows, seen = [], {}
    for number, entry in enumerate(training):
        where = f"{dataset_json}: training[{number}]"
        if not isinstance(entry, dict):
            raise DataError(f"{where} must be an object with 'image' and 'label', got {entry!r}")
        image_path = _entry_path(entry, "image", where, root, task_dir)
        case = _case_name(image_path, where)
        if case in seen:
            raise DataError(f"{dataset_json}: training[{seen[case]}] and training[{number}] are both case {case!r}")
        seen[case] = number
        label_path = _entry_path(entry, "label", where, root, task_dir)
        row = check_pair(image_path, label_path, case)
        rows.append({**row, "image": str(image_path), "label": str(label_path),
                     "image_md5": file_md5(image_path), "label_md5": file_md5(label_path)})
    return rows


def prepare(archive: Path, extract_to: Path, out: Path) -> list[dict[str, str]]:
    """Extract ``archive`` safely into ``extract_to``, check every pair and write the index CSV ``out``; its rows."""
    safe_extract(archive, extract_to)
    rows = index_task(extract_to)
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows

