"""CelebA: check the image zip against its annotation files and write one index.

The 202,599 JPEGs stay inside the verified zip (later stages read them straight
from it); the index lists every image with its zip member, its partition and its
five landmarks.
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path, PurePosixPath

from mlnb.data.celeba_format import LANDMARK_COLUMNS, PARTITIONS
from mlnb.errors import ConfigError, DataError
from mlnb.io import atomic_path

INDEX_COLUMNS = ("image_id", "member", "partition", *LANDMARK_COLUMNS)


def _read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read it as text ({type(error).__name__}: {error})") from error


def _add_once(table: dict, name: str, value, path: Path, number: int, lines: dict[str, int]) -> None:
    if name in table:
        raise DataError(f"{path}:{number}: image {name} is listed again (first on line {lines[name]})")
    table[name], lines[name] = value, number


def read_landmarks(path: Path) -> dict[str, list[int]]:
    """Parse the landmarks file (``list_landmarks_align_celeba.txt``): a count, a header, then one row per image."""
    lines = _read_lines(path)
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"{path}: expected an image count on line 1 and a header on line 2")
    header = lines[1].split()
    if tuple(header) != LANDMARK_COLUMNS:
        raise DataError(f"{path}: line 2 header {header} is not {list(LANDMARK_COLUMNS)}")
    landmarks, seen = {}, {}
    for number, line in enumerate(lines[2:], start=3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 1 + len(LANDMARK_COLUMNS):
            raise DataError(f"{path}:{number}: expected an image name and 10 coordinates, got {len(fields)} fields")
        try:
            coordinates = [int(value) for value in fields[1:]]
        except ValueError as error:
            raise DataError(f"{path}:{number}: non-integer coordinate ({error})") from error
        _add_once(landmarks, fields[0], coordinates, path, number, seen)
    if len(landmarks) != int(lines[0]):
        raise DataError(f"{path}: line 1 announces {int(lines[0])} images but {len(landmarks)} rows follow")
    return landmarks


def read_partition(path: Path) -> dict[str, str]:
    partition, seen = {}, {}
    for number, line in enumerate(_read_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in PARTITIONS:
            raise DataError(f"{path}:{number}: expected '<image> <0|1|2>', got {line!r}")
        _add_once(partition, fields[0], PARTITIONS[fields[1]], path, number, seen)
    return partition


def zip_images(path: Path) -> dict[str, str]:
    """Map image name (``000001.jpg``) to its member path inside the zip; a name in two folders is refused.

    The annotation files name images by base name only, so two members with one
    base name would give one of them the other's landmarks.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f"{path}: not a readable zip archive ({error})") from error
    images = {}
    for name in names:
        member = PurePosixPath(name)
        if member.suffix.lower() == ".jpg" and not member.name.startswith("._") and "__MACOSX" not in member.parts:
            if member.name in images:
                raise DataError(f"{path}: members {images[member.name]!r} and {name!r} share the name "
                                f"{member.name}; the annotation files could not tell them apart")
            images[member.name] = name
    if not images:
        raise DataError(f"{path}: the zip holds no .jpg images")
    return images


def _check_same_images(images: dict[str, str], listed: dict, images_zip, listing, what: str) -> None:
    """The zip and an annotation file must name the same images, in both directions."""
    if missing := sorted(set(images) - set(listed)):
        raise DataError(f"{listing}: no {what} for {len(missing)} images of {images_zip}, e.g. {missing[:3]}")
    if extra := sorted(set(listed) - set(images)):
        raise DataError(f"{images_zip}: {len(extra)} images that {listing} lists are not in the zip, e.g. {extra[:3]}")


def prepare(images_zip: Path, landmarks_txt: Path, partition_txt: Path, out: Path,
            limit: int | None = None) -> dict[str, int]:
    """Check the zip against both annotation files and write the index CSV ``out``; the images per partition."""
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be a positive number of images (or left out for all), got {limit}")
    images = zip_images(Path(images_zip))
    landmarks = read_landmarks(Path(landmarks_txt))
    partition = read_partition(Path(partition_txt))
    _check_same_images(images, landmarks, images_zip, landmarks_txt, "landmarks")
    _check_same_images(images, partition, images_zip, partition_txt, "partition")
    names = sorted(images)[:limit]
    counts = {split: 0 for split in PARTITIONS.values()}
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(INDEX_COLUMNS)
        for name in names:
            writer.writerow([name, images[name], partition[name], *landmarks[name]])
            counts[partition[name]] += 1
    return {"images": len(names), **counts}

