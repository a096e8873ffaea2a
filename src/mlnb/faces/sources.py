"""What to align: images in zips, directories or plain files, optionally a CelebA shard.

An :class:`Item` names one input image and carries CelebA's five landmarks when an
index provides them. Items are light (no pixels), so a shard's list is built up
front and handed to worker processes, which read the bytes themselves: each
worker keeps its own open zip archives.
"""

from __future__ import annotations

import csv
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


def items_from_index(container: str | Path, index: str | Path) -> list[Item]:
    """The images listed in a CelebA index.csv (column ``member``), with their landmarks.

    ``container`` is the zip (members read from it) or directory (members are
    paths relative to it) that the index describes.
    """
    container, index = Path(container), Path(index)
    if not container.is_dir() and not zipfile.is_zipfile(container):
        raise DataError(f"input {container}: neither a directory nor a readable zip archive")
    archive = None if container.is_dir() else str(container)
    try:
        handle = open(index, newline="")
    except OSError as error:
        raise DataError(f"index {index}: cannot open ({error.strerror})") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = {"member", *LANDMARK_COLUMNS} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"index {index}: missing columns {sorted(missing)}")
        items = []
        for line, row in enumerate(reader, start=2):
            landmarks = tuple(_landmark_value(row[c], f"index {index} line {line}") for c in LANDMARK_COLUMNS)
            source = row["member"] if archive else str(container / row["member"])
            items.append(Item(source, archive=archive, celeba=landmarks))
    return items


def shard(items: Sequence[Item], number: int, count: int) -> list[Item]:
    """Shard ``number`` (0-based) of ``count`` contiguous, near-equal shards, keeping input order."""
    if count < 1 or not 0 <= number < count:
        raise ConfigError(f"shard {number} of {count}: the shard must be in 0..{count - 1} and shards >= 1")
    return list(items[len(items) * number // count: len(items) * (number + 1) // count])


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
