"""Augmented copies on disk, each with a JSON record from which it replays byte for byte.

A record holds the seed keys, the input files and their md5, the engine
(mode, spline order, dims) and the drawn transforms in order with their
parameters. Replaying reads the same inputs (checked against the md5), applies
the recorded transforms (nothing is drawn again) and writes the same files.
Input paths are recorded as given, so replay from the same working directory.
"""

from __future__ import annotations

import contextlib
import glob
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mlnb.augment import MODES, augment
from mlnb.augment.io import LoadedPair, read_pair, split_name, write_image, write_segmentation
from mlnb.augment.pair import Augmented
from mlnb.augment.policy import STAGE, RandomPolicy, copy_generator
from mlnb.augment.preview import is_own_preview, write_preview
from mlnb.augment.transforms import Transform
from mlnb.errors import DataError
from mlnb.io import atomic_path, file_md5

FORMAT = "mlnb-augment/1"


@dataclass(frozen=True)
class Engine:
    mode: str
    order: int


@dataclass
class PhaseTimes:
    """Wall-clock seconds of each phase of the stage (read, engine, write, preview, record), summed over copies."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def per_copy(self, copies: int) -> str:
        """'read 25 ms, engine 230 ms, ...' per copy (what is done once, like reading, shared out)."""
        return ", ".join(f"{name} {seconds / max(copies, 1) * 1e3:.0f} ms" for name, seconds in self.seconds.items())


def output_names(loaded: LoadedPair, copy: int, preview: bool) -> dict[str, str | None]:
    """``<name>_aug<k>.<ext>``, ``<name>_aug<k>_seg.<ext>``, ``<name>_aug<k>_preview.png``, ``.json``."""
    name, image_extension = split_name(loaded.image.path)
    stem = f"{name}_aug{copy}"
    return {
        "image": f"{stem}{image_extension}",
        "seg": None if loaded.seg is None else f"{stem}_seg{loaded.seg.extension}",
        "preview": f"{stem}_preview.png" if preview else None,
        "record": f"{stem}.json",
    }


def _input_entry(file) -> dict[str, str] | None:
    return None if file is None else {"path": str(file.path), "md5": file_md5(file.path)}


def wants_preview(previews: str, copy: int) -> bool:
    """``previews`` all: every copy; first: copy 0; none: no copy."""
    return previews == "all" or (previews == "first" and copy == 0)


def augment_copies(loaded: LoadedPair, policy: RandomPolicy, seed: int, copies: int, out: Path,
                   engine: Engine, item: str | None = None, *, previews: str,
                   times: PhaseTimes | None = None, write_behind: bool = False) -> list[dict]:
    """Write ``copies`` augmented copies of ``loaded`` into ``out``; return their records. ``times`` (if given)
    gets the seconds of each phase.

    With ``write_behind``, each copy is written on a second thread while the next one is computed (gzip of a
    .nii.gz output alone takes longer than the engine); at most one copy waits, and the bytes are the same.
    """
    times = times or PhaseTimes()
    item = item or split_name(loaded.image.path)[0]
    with times.phase("read"):  # the inputs' md5, for the records
        inputs = {"image": _input_entry(loaded.image), "seg": _input_entry(loaded.seg)}
    records: list[dict] = []
    pending: Future | None = None  # the copy being written behind
    with ThreadPoolExecutor(1, "augment-writer") if write_behind else contextlib.nullcontext() as writer:
        for copy in range(copies):
            transforms, record = _draw_copy(loaded, policy, seed, copy, engine, item, inputs, previews)
            with times.phase("engine"):
                augmented = augment(loaded.pair, transforms, engine.mode, engine.order)
            if writer is None:
                records.append(write_copy(out, loaded, augmented, record, times))
                continue
            if pending is not None:
                records.append(pending.result())
            pending = writer.submit(write_copy, out, loaded, augmented, record, times)
        if pending is not None:
            records.append(pending.result())
    return records


def _draw_copy(loaded: LoadedPair, policy: RandomPolicy, seed: int, copy: int, engine: Engine, item: str,
               inputs: dict, previews: str) -> tuple[list[Transform], dict]:
    """The transforms of copy ``copy`` and its record: seed keys, engine, inputs, transforms, output names."""
    transforms = policy.draw(copy_generator(seed, item, copy), loaded.pair.kind, loaded.pair.depth)
    return transforms, {
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
        "outputs": output_names(loaded, copy, wants_preview(previews, copy)),
    }


def write_copy(out: Path, loaded: LoadedPair, augmented: Augmented, record: dict,
               times: PhaseTimes | None = None) -> dict:
    """Write the image, segmentation, preview (if named) and record of one copy; return the record."""
    times = times or PhaseTimes()
    record = {**record, "notes": augmented.notes}
    names = record["outputs"]
    with times.phase("write"):
        write_image(augmented, loaded.image, out / names["image"])
        if loaded.seg is not None:
            write_segmentation(augmented, loaded.seg, out / names["seg"])
    if names["preview"]:
        with times.phase("preview"):
            caption = f"{record['item']} copy {record['copy']} ({record['mode']}): " + ", ".join(
                Transform.from_json(entry).summary() for entry in record["transforms"])
            write_preview(out / names["preview"], loaded.pair, augmented, caption)
    with times.phase("record"), atomic_path(out / names["record"]) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return record


def remove_stale_copies(loaded: LoadedPair, out: Path, records: list[dict]) -> list[Path]:
    """Remove what an earlier run of this command left in ``out`` that ``records`` no longer make.

    Only this command's own files go: copies k >= len(records) whose record (an
    augmentation record of the same item and copy, written under this image's
    naming pattern) lists them, and previews that a copy no longer gets, when the
    PNG carries this command's mark. Anything else, a user's file that merely
    looks like ours included, stays.
    """
    name = split_name(loaded.image.path)[0]
    item = records[0]["item"] if records else name
    removed = []
    pattern = re.compile(rf"{re.escape(name)}_aug(\d+)\.json")
    for record_path in sorted(out.glob(f"{glob.escape(name)}_aug*.json")):
        match = pattern.fullmatch(record_path.name)
        copy = None if match is None else int(match.group(1))
        if copy is None or copy < len(records):
            continue
        try:
            old = read_record(record_path)
        except DataError:
            continue
        if old.get("item") != item or old.get("copy") != copy or not isinstance(old.get("outputs"), dict):
            continue
        ours = set(output_names(loaded, copy, preview=True).values()) - {None}
        for role, file_name in old["outputs"].items():
            path = out / str(file_name)
            if role != "record" and file_name in ours and path.is_file():
                if role != "preview" or is_own_preview(path):
                    path.unlink()
                    removed.append(path)
        record_path.unlink()
        removed.append(record_path)
    for record in records:
        if record["outputs"]["preview"] is None:
            path = out / output_names(loaded, record["copy"], preview=True)["preview"]
            if path.is_file() and is_own_preview(path):
                path.unlink()
                removed.append(path)
    return removed


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


def _plain_name(name: object, role: str, path: Path) -> str | None:
    """An output name from a record: a bare file name (no folder, no ``..``), or None."""
    if name is None and role in ("seg", "preview"):
        return None
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise DataError(f"{path}: outputs.{role} {name!r} is not a plain file name; a replay writes only "
                        "inside its output folder")
    return name


def _checked_inputs(record: dict, path: Path) -> dict:
    inputs = record.get("inputs")
    image = inputs.get("image") if isinstance(inputs, dict) else None
    entries = [image, inputs.get("seg")] if isinstance(inputs, dict) else []
    if not isinstance(image, dict) or not all(
            entry is None or (isinstance(entry, dict) and isinstance(entry.get("path"), str)
                              and isinstance(entry.get("md5"), str)) for entry in entries):
        raise DataError(f"{path}: inputs must name the image (and seg or null), each with a path and md5")
    return inputs


def replay(record_path: Path, out: Path | None = None, force: bool = False) -> dict:
    """Recreate the copy that ``record_path`` describes, byte for byte, in ``out`` (default: beside it).

    Writes only the record's outputs, which must be plain file names, inside
    ``out``; a file that exists there (the copy and record it was made from, when
    ``out`` is the record's own folder) is overwritten only with ``force``.
    """
    record_path = Path(record_path)
    record = read_record(record_path)
    inputs = _checked_inputs(record, record_path)
    outputs = record.get("outputs")
    transforms = record.get("transforms")
    if not isinstance(outputs, dict) or not isinstance(transforms, list) or not all(
            isinstance(entry, dict) for entry in transforms):
        raise DataError(f"{record_path}: the record needs outputs and a list of transforms")
    if not isinstance(record.get("item"), str) or not isinstance(record.get("copy"), int) or \
            record.get("mode") not in MODES or record.get("order") not in range(6):
        raise DataError(f"{record_path}: the record needs an item, a copy number, a mode "
                        f"({', '.join(MODES)}) and a spline order 0..5")
    names = {role: _plain_name(outputs.get(role), role, record_path) for role in ("image", "seg", "preview", "record")}
    for role, entry in inputs.items():
        if entry is not None and Path(entry["path"]).is_file() and file_md5(entry["path"]) != entry["md5"]:
            raise DataError(f"{entry['path']}: the {role} changed since {record_path} was written "
                            f"(md5 {file_md5(entry['path'])}, recorded {entry['md5']})")
    folder = Path(out) if out is not None else record_path.parent
    existing = [folder / name for name in names.values() if name is not None and (folder / name).exists()]
    if existing and not force:
        raise DataError(f"{existing[0]}: exists; replay never overwrites (give --force, or another --out)")
    loaded = read_pair(inputs["image"]["path"], inputs["seg"]["path"] if inputs.get("seg") else None)
    augmented = augment(loaded.pair, [Transform.from_json(entry) for entry in transforms], record["mode"],
                        record["order"])
    return write_copy(folder, loaded, augmented, {**record, "outputs": names})
