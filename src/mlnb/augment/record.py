"""Augmented copies on disk, each with a JSON record from which it replays byte for byte.

A record holds the seed keys, the input files and their md5, the engine
(mode, spline order, dims) and the drawn transforms in order with their
parameters. Replaying reads the same inputs (checked against the md5), applies
the recorded transforms (nothing is drawn again) and writes the same files.
Input paths are recorded as given, so replay from the same working directory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlnb.augment import augment
from mlnb.augment.io import LoadedPair, read_pair, split_name, write_image, write_segmentation
from mlnb.augment.pair import Augmented
from mlnb.augment.policy import STAGE, RandomPolicy, copy_generator
from mlnb.augment.preview import write_preview
from mlnb.augment.transforms import Transform
from mlnb.errors import DataError
from mlnb.io import atomic_path, file_md5

FORMAT = "mlnb-augment/1"


@dataclass(frozen=True)
class Engine:
    mode: str = "fused"
    order: int = 3


def output_names(loaded: LoadedPair, copy: int) -> dict[str, str | None]:
    """``<name>_aug<k>.<ext>``, ``<name>_aug<k>_seg.<ext>``, ``<name>_aug<k>_preview.png``, ``.json``."""
    name, image_extension = split_name(loaded.image.path)
    stem = f"{name}_aug{copy}"
    return {
        "image": f"{stem}{image_extension}",
        "seg": None if loaded.seg is None else f"{stem}_seg{loaded.seg.extension}",
        "preview": f"{stem}_preview.png",
        "record": f"{stem}.json",
    }


def _input_entry(file) -> dict[str, str] | None:
    return None if file is None else {"path": str(file.path), "md5": file_md5(file.path)}


def augment_copies(loaded: LoadedPair, policy: RandomPolicy, seed: int, copies: int, out: Path,
                   engine: Engine = Engine(), item: str | None = None) -> list[dict]:
    """Write ``copies`` augmented copies of ``loaded`` into ``out``; return their records."""
    item = item or split_name(loaded.image.path)[0]
    inputs = {"image": _input_entry(loaded.image), "seg": _input_entry(loaded.seg)}
    records = []
    for copy in range(copies):
        rng = copy_generator(seed, item, copy)
        transforms = policy.draw(rng, loaded.pair.kind, loaded.pair.depth)
        record = {
            "format": FORMAT,
            "item": item,
            "copy": copy,
            "seed": {"seed": seed, "keys": [STAGE, item, copy]},
            "mode": engine.mode,
            "order": engine.order,
            "dims": None if policy.dims is None else list(policy.dims),
            "kind": loaded.pair.kind,
            "inputs": inputs,
            "transforms": [transform.to_json() for transform in transforms],
            "outputs": output_names(loaded, copy),
        }
        augmented = augment(loaded.pair, transforms, engine.mode, engine.order)
        records.append(write_copy(out, loaded, augmented, record))
    return records


def write_copy(out: Path, loaded: LoadedPair, augmented: Augmented, record: dict) -> dict:
    """Write the image, segmentation, preview and record of one copy; return the record."""
    record = {**record, "notes": augmented.notes}
    names = record["outputs"]
    write_image(augmented, loaded.image, out / names["image"])
    if loaded.seg is not None:
        write_segmentation(augmented, loaded.seg, out / names["seg"])
    caption = f"{record['item']} copy {record['copy']} ({record['mode']}): " + ", ".join(
        Transform.from_json(entry).summary() for entry in record["transforms"])
    write_preview(out / names["preview"], loaded.pair, augmented, caption)
    with atomic_path(out / names["record"]) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return record


def read_record(path: Path) -> dict:
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError as error:
        raise DataError(f"{path}: record not found") from error
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable augmentation record ({error})") from error
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise DataError(f"{path}: not an augmentation record (format {FORMAT!r} expected)")
    return record


def replay(record_path: Path, out: Path | None = None) -> dict:
    """Recreate the copy that ``record_path`` describes, byte for byte, in ``out`` (default: beside it)."""
    record = read_record(record_path)
    inputs = record["inputs"]
    for role, entry in inputs.items():
        if entry is not None and Path(entry["path"]).is_file() and file_md5(entry["path"]) != entry["md5"]:
            raise DataError(f"{entry['path']}: the {role} changed since {record_path} was written "
                            f"(md5 {file_md5(entry['path'])}, recorded {entry['md5']})")
    loaded = read_pair(inputs["image"]["path"], inputs["seg"]["path"] if inputs["seg"] else None)
    transforms = [Transform.from_json(entry) for entry in record["transforms"]]
    augmented = augment(loaded.pair, transforms, record["mode"], record["order"])
    return write_copy(Path(out) if out is not None else Path(record_path).parent, loaded, augmented, record)
