"""Offline replicas of the three datasets, in their real file formats (``mlnb demo-data``).

Built only from data that installed packages ship, so the demo and the tests run
with no network through the very same data rules as a real run: MNIST
(:mod:`mlnb.demo.mnist`), CelebA (:mod:`mlnb.demo.celeba`) and Task02_Heart
(:mod:`mlnb.demo.heart`). Every draw comes from :func:`mlnb.rng.generator`, so the
same seed gives the same replica. ``replica_record.json`` beside each replica
records what was done and which package files it was built from.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from mlnb.errors import ConfigError
from mlnb.io import atomic_path

DATASETS = ("mnist", "celeba", "heart")


def build(dataset: str, out: Path, seed: int) -> dict:
    """The replica of ``dataset`` in ``out``, with its ``replica_record.json``; return the record."""
    builder = importlib.import_module(f"mlnb.demo.{dataset}").build
    out.mkdir(parents=True, exist_ok=True)
    record = {"dataset": dataset, "seed": seed, **builder(out, seed)}
    with atomic_path(out / "replica_record.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return record


def build_replicas(out: Path, seed: int = 0, datasets: Sequence[str] = DATASETS) -> Iterator[Path]:
    """Build ``datasets`` one by one, each in ``out``/<dataset>, yielding its folder once it is built (so the
    caller can report progress: nothing is built until the generator runs)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, not a folder")
    for dataset in datasets:
        build(dataset, out / dataset, seed)
        yield out / dataset
