"""One manifest of all augmented copies, logged to MLflow with their previews (``mlnb gather-augment``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mlnb import tracking
from mlnb.augment.policy import RANDOM_TRANSFORMS
from mlnb.augment.record import read_record
from mlnb.augment.transforms import Transform
from mlnb.errors import DataError
from mlnb.io import atomic_path

COLUMNS = ("item", "copy", "image", "seg", "preview", "record", "mode", "order", "transforms", "random_transforms",
           "notes")


def manifest_row(record_path: Path) -> dict[str, str]:
    """One manifest row; a DataError if the record or any file it lists is missing."""
    record = read_record(record_path)
    folder = record_path.parent
    files = {role: None if name is None else folder / name for role, name in record["outputs"].items()}
    for role, path in files.items():
        if path is not None and not path.is_file():
            raise DataError(f"{record_path}: its {role} output {path} is missing")
    return {
        "item": record["item"],
        "copy": str(record["copy"]),
        "image": str(files["image"]),
        "seg": "" if files["seg"] is None else str(files["seg"]),
        "preview": "" if files["preview"] is None else str(files["preview"]),
        "record": str(record_path),
        "mode": record["mode"],
        "order": str(record["order"]),
        "transforms": "; ".join(Transform.from_json(entry).summary() for entry in record["transforms"]),
        # drawn by the random policy (normalise, crop and resample are in every chain)
        "random_transforms": str(sum(entry["name"] in RANDOM_TRANSFORMS for entry in record["transforms"])),
        "notes": "; ".join(record.get("notes", [])),
    }


def write_manifest(rows: list[dict[str, str]], out: Path) -> None:
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def gather_augment(records: list[Path], manifest: Path, max_previews: int = 20,
                   tracking_options: tracking.TrackingOptions = tracking.TrackingOptions()) -> list[dict[str, str]]:
    """The ``manifest`` CSV of the copies that ``records`` describe, and an MLflow run "gather-augment" (as
    ``tracking_options`` says) with their counts, the manifest and copy 0's previews of the first
    ``max_previews`` items; return the manifest's rows."""
    from PIL import Image

    rows = sorted((manifest_row(path) for path in records), key=lambda row: (row["item"], int(row["copy"])))
    write_manifest(rows, manifest)
    items = sorted({row["item"] for row in rows})
    params = {"items": len(items), "copies": len(rows), "mode": sorted({row["mode"] for row in rows})}
    with tracking.tracked_run(tracking_options, "gather-augment", params=params) as tracker:
        tracker.log_metrics({
            "items": len(items),
            "copies": len(rows),
            "transforms_per_copy": float(np.mean([int(row["random_transforms"]) for row in rows])),
            "copies_with_notes": sum(1 for row in rows if row["notes"]),
        })
        for row in [row for row in rows if row["copy"] == "0" and row["preview"]][:max_previews]:
            with Image.open(row["preview"]) as preview:
                tracker.log_image(np.asarray(preview.convert("RGB")), f"previews/{row['item']}.png")
        tracker.log_artifact(manifest)
    return rows
