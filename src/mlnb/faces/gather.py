"""Join aligned shards into one array, one manifest and a summary (``mlnb gather-faces``).

Shards are joined in the order given (the shard order), so the gathered manifest
keeps the input order; each shard's ``index`` is shifted by the faces before it.
Faces are copied in blocks from memory-mapped shard arrays: memory stays flat.
The preview and the MLflow record are ``mlnb report-faces`` (a preview edit must
not rewrite the faces, nor rerun what trains on them).
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np

from mlnb.errors import DataError
from mlnb.faces.packing import stream_npy
from mlnb.faces.pipeline import ALIGNED, MANIFEST_COLUMNS, manifest_writer
from mlnb.io import atomic_path

log = logging.getLogger(__name__)

#: faces copied at a time (64x64x3 faces: 48 MB)
BLOCK_ROWS = 4096


def read_manifest(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = set(MANIFEST_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"manifest {path}: missing columns {sorted(missing)}")
            return list(reader)
    except OSError as error:
        raise DataError(f"manifest {path}: cannot read ({error.strerror})") from None


def load_faces(path: Path) -> np.ndarray:
    """A faces.npy, memory-mapped."""
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:
        raise DataError(f"faces {path}: cannot read ({error})") from None


def open_shard_faces(shard: Path, rows: list[dict[str, str]]) -> np.ndarray:
    """The shard's faces, memory-mapped, checked against its manifest."""
    path = shard / "faces.npy"
    faces = load_faces(path)
    indices = [int(row["index"]) for row in rows if row["index"] != ""]
    if indices != list(range(len(faces))) or faces.ndim != 4 or faces.dtype != np.uint8:
        raise DataError(f"faces {path}: {faces.dtype} array of shape {faces.shape} does not match "
                        f"the {len(indices)} aligned rows of {shard / 'manifest.csv'}")
    return faces


def face_size(shards: list[Path]) -> int:
    """The side of the shards' faces, which must agree."""
    shapes = {load_faces(shard / "faces.npy").shape[1:] for shard in shards}
    if len(shapes) != 1:
        raise DataError(f"shards {', '.join(map(str, shards))} hold faces of different shapes {sorted(shapes)}")
    shape = shapes.pop()
    if len(shape) != 3 or shape[0] != shape[1] or shape[2] != 3:
        raise DataError(f"shards {', '.join(map(str, shards))} hold arrays of {shape}, not square RGB faces")
    return shape[0]


class Summary:
    """Counts per status, method, detection pass and reason, accumulated row by row."""

    def __init__(self, shards: int):
        self.shards = shards
        self.images = 0
        self.several_faces = 0
        self.status: Counter[str] = Counter()
        self.method: Counter[str] = Counter()
        self.detection_pass: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()

    def add(self, row: dict[str, str]) -> None:
        self.images += 1
        self.status[row["status"]] += 1
        if row["method"]:
            self.method[row["method"]] += 1
        if row["upsample"]:
            self.detection_pass[f"scale {row['detect_scale']}, upsample {row['upsample']}"] += 1
        if row["faces"] and int(row["faces"]) > 1:
            self.several_faces += 1
        if row["status"] != ALIGNED:
            self.reasons[row["reason"].split(":")[0]] += 1

    def as_dict(self) -> dict[str, object]:
        aligned = self.status[ALIGNED]
        return {
            "images": self.images,
            "shards": self.shards,
            "aligned": aligned,
            "aligned_fraction": aligned / self.images if self.images else 0.0,
            "status": dict(sorted(self.status.items())),
            "method": dict(sorted(self.method.items())),
            "detection_pass": dict(sorted(self.detection_pass.items())),
            "several_faces": self.several_faces,
            "reasons_not_aligned": dict(sorted(self.reasons.items())),
        }


def gather(shards: list[Path], out: Path) -> dict[str, object]:
    """Write ``out``/faces.npy, manifest.csv and summary.json from the shards; return the summary."""
    size = face_size(shards)
    summary = Summary(len(shards))
    with manifest_writer(out / "manifest.csv") as manifest, stream_npy(out / "faces.npy", (size, size, 3)) as faces:
        for shard in shards:
            rows = read_manifest(shard / "manifest.csv")
            shard_faces = open_shard_faces(shard, rows)
            offset = faces.count
            for start in range(0, len(shard_faces), BLOCK_ROWS):
                faces.append(np.asarray(shard_faces[start:start + BLOCK_ROWS]))
            for row in rows:
                if row["index"] != "":
                    row["index"] = str(int(row["index"]) + offset)
                manifest.writerow(row)
                summary.add(row)
    counts = summary.as_dict()
    with atomic_path(out / "summary.json") as tmp:
        tmp.write_text(json.dumps(counts, indent=2) + "\n")
    log.info("gathered %d shards: %d images, %d aligned (%s); wrote %s", len(shards), counts["images"],
             counts["aligned"], ", ".join(f"{k} {v}" for k, v in counts["method"].items()), out)
    return counts
