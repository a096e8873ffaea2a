"""What to align: images in zips, directories or plain files, optionally a CelebA shard.

An :class:`Item` names one input image and carries CelebA's five landmarks when an
index provides them. Items are light (no pixels), so a shard's list is built up
front and handed to worker processes, which read the bytes themselves: each
worker keeps its own open zip archives.
"""

from __future__ import annotations

import csv
import io
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlnb.data.celeba_format import LANDMARK_COLUMNS
from mlnb.errors import ConfigError, DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class Item:
    """One input image: ``source`` is its zip member name or file path."""

    source: str
    archive: str | None = None
    celeba: tuple[float, ...] | None = None

    def celeba_landmarks(self) -> np.ndarray | None:
        """CelebA's five landmarks as 5x2, or None when absent or incomplete."""
        if self.celeba is None or not all(map(math.isfinite, self.celeba)):
            return None
        return np.array(self.celeba, dtype=np.float64).reshape(5, 2)


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES and not name.startswith("__MACOSX/")


def _zip_items(path: Path) -> list[Item]:
    with zipfile.ZipFile(path) as archive:
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
    return [Item(name, archive=str(path)) for name in names if is_image_name(name)]


def _directory_items(path: Path) -> list[Item]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and is_image_name(p.name))
    return [Item(str(p)) for p in files]


def items_from_inputs(inputs: Sequence[str | Path]) -> list[Item]:
    """Every image in the inputs, in order: zip members in archive order, directories sorted."""
    items: list[Item] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            items += _directory_items(path)
        elif zipfile.is_zipfile(path):
            items += _zip_items(path)
        elif path.is_file():
            items.append(Item(str(path)))
        else:
            raise DataError(f"input {path}: no such file or directory")
    return items


def _landmark_value(text: str, where: str) -> float:
    if text.strip() == "":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}: landmark {text!r} is not a number") from None


def items_from_index(container: str | Path, index: str | Path, number: int = 0, count: int = 1) -> list[Item]:
    """The images of shard ``number`` of ``count`` (see :func:`shard`) of a CelebA index.csv, with landmarks.

    ``container`` is the zip (members read from it) or directory (members are
    paths relative to it) that the index describes (column ``member``). Only the
    shard's rows are parsed: the lines are split first, so that each of CelebA's
    64 shard jobs does not parse all 202,599 rows (an index with quoted fields,
    which may hold line breaks, is parsed whole).
    """
    container, index = Path(container), Path(index)
    _check_shard(number, count)
    if not container.is_dir() and not zipfile.is_zipfile(container):
        raise DataError(f"input {container}: neither a directory nor a readable zip archive")
    archive = None if container.is_dir() else str(container)
    try:
        data = index.read_bytes()
    except OSError as error:
        raise DataError(f"index {index}: cannot open ({error.strerror})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"index {index}: not UTF-8 text ({error})") from None
    if '"' in text:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    else:
        rows = text.splitlines()
    header, rows = (rows[0], rows[1:]) if rows else ([], [])
    fieldnames = header if isinstance(header, list) else next(csv.reader([header]))
    missing = {"member", *LANDMARK_COLUMNS} - set(fieldnames)
    if missing:
        raise DataError(f"index {index}: missing columns {sorted(missing)}")
    while rows and not rows[-1]:
        rows.pop()
    start, stop = len(rows) * number // count, len(rows) * (number + 1) // count
    selected = rows[start:stop]
    lines = selected if '"' in text else csv.reader(selected)
    member, landmark_columns = fieldnames.index("member"), [fieldnames.index(c) for c in LANDMARK_COLUMNS]
    items = []
    for line, values in enumerate(lines, start=start + 2):
        where = f"index {index} line {line}"
        if len(values) != len(fieldnames):
            raise DataError(f"{where}: {len(values)} fields, the header has {len(fieldnames)}")
        landmarks = tuple(_landmark_value(values[column], where) for column in landmark_columns)
        source = values[member] if archive else str(container / values[member])
        items.append(Item(source, archive=archive, celeba=landmarks))
    return items


def _check_shard(number: int, count: int) -> None:
    if count < 1 or not 0 <= number < count:
        raise ConfigError(f"shard {number} of {count}: the shard must be in 0..{count - 1} and shards >= 1")


def shard(items: Sequence[Item], number: int, count: int) -> list[Item]:
    """Shard ``number`` (0-based) of ``count`` contiguous, near-equal shards, keeping input order."""
    _check_shard(number, count)
    return list(items[len(items) * number // count: len(items) * (number + 1) // count])


def select_items(inputs: Sequence[str | Path], index: str | Path | None, number: int | None,
                 count: int) -> list[Item]:
    """The items of shard ``number`` of ``count`` (``None``: every input); with a CelebA ``index``, of the one
    zip or directory it describes, in its order."""
    number, count = (0, 1) if number is None else (number, count)
    if index is not None:
        if len(inputs) != 1:
            raise ConfigError(f"--index describes one zip or directory, got {len(inputs)} inputs")
        return items_from_index(inputs[0], index, number, count)
    return shard(items_from_inputs(inputs), number, count)


class ItemReader:
    """Reads items' bytes, keeping each zip archive open for the life of the reader."""

    def __init__(self):
        self._archives: dict[str, zipfile.ZipFile] = {}

    def read(self, item: Item) -> bytes:
        if item.archive is None:
            return Path(item.source).read_bytes()
        archive = self._archives.get(item.archive)
        if archive is None:
            archive = self._archives[item.archive] = zipfile.ZipFile(item.archive)
        return archive.read(item.source)

    def close(self) -> None:
        for archive in self._archives.values():
            archive.close()
        self._archives.clear()
