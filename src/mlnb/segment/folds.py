"""k folds over the labelled cases, fixed by the seed: fold k's cases are held out while the rest train."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlnb.errors import ConfigError, DataError
from mlnb.io import atomic_path
from mlnb.rng import generator

FORMAT = "mlnb-segment-folds/1"


def assign_folds(cases: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    """The held-out cases of each fold: the sorted cases in a seeded order, dealt into ``folds`` near-equal
    parts (disjoint, together every case)."""
    if len(set(cases)) != len(cases):
        raise DataError(f"segment folds: cases listed twice in {sorted(cases)}")
    if folds < 2 or len(cases) < folds:
        raise ConfigError(f"segment.folds {folds}: needs 2 <= folds <= the {len(cases)} labelled cases")
    order = generator(seed, "segment", "folds").permutation(sorted(cases))
    return [sorted(part.tolist()) for part in np.array_split(order, folds)]


def write_folds(path: Path, cases: Sequence[str], folds: int, seed: int) -> list[list[str]]:
    held_out = assign_folds(cases, folds, seed)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"format": FORMAT, "seed": seed, "folds": held_out}, indent=2) + "\n")
    return held_out


def read_folds(path: Path) -> list[list[str]]:
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable folds file ({error})") from None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        raise DataError(f"{path}: not a folds file (format {FORMAT} expected)")
    return value["folds"]


def split(folds: list[list[str]], fold: int, origin: Path | str = "folds") -> tuple[list[str], list[str]]:
    """(training cases, held-out cases) of ``fold`` (0-based)."""
    if not 0 <= fold < len(folds):
        raise ConfigError(f"{origin}: fold {fold} does not exist (folds 0..{len(folds) - 1})")
    return sorted(case for number, part in enumerate(folds) if number != fold for case in part), folds[fold]
