"""``mlnb gather-augment``: one manifest of all augmented copies, previews logged to MLflow."""

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


def configure_parser(parser) -> None:
    parser.add_argument("records", nargs="+", type=Path, help="the <name>_aug<k>.json records of every copy")
    parser.add_argument("--manifest", type=Path, required=True, help="CSV to write, one row per copy")
    parser.add_argument("--max-previews", type=int, default=20,
                        help="previews logged to MLflow (copy 0 of the first items)")
    tracking.add_tracking_arguments(parser)


def run(args) -> int:
    from PIL import Image

    rows = sorted((manifest_row(path) for path in args.records), key=lambda row: (row["item"], int(row["copy"])))
    write_manifest(rows, args.manifest)
    items = sorted({row["item"] for row in rows})
    params = {"items": len(items), "copies": len(rows), "mode": sorted({row["mode"] for row in rows})}
    with tracking.tracked_run(args, "gather-augment", params=params) as tracker:
        tracker.log_metrics({
            "items": len(items),
            "copies": len(rows),
            "transforms_per_copy": float(np.mean([int(row["random_transforms"]) for row in rows])),
            "copies_with_notes": sum(1 for row in rows if row["notes"]),
        })
        for row in [row for row in rows if row["copy"] == "0" and row["preview"]][: args.max_previews]:
            with Image.open(row["preview"]) as preview:
                tracker.log_image(np.asarray(preview.convert("RGB")), f"previews/{row['item']}.png")
        tracker.log_artifact(args.manifest)
    print(f"{len(rows)} augmented copies of {len(items)} items -> {args.manifest}")
    return 0
