"""``mlnb demo-data``: offline replicas of the three datasets, in their real file formats.

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
from pathlib import Path

from mlnb.errors import ConfigError
from mlnb.io import atomic_path

DATASETS = ("mnist", "celeba", "heart")


def build(dataset: str, out: Path, seed: int) -> dict:
    builder = importlib.import_module(f"mlnb.demo.{dataset}").build
    out.mkdir(parents=True, exist_ok=True)
    record = {"dataset": dataset, "seed": seed, **builder(out, seed)}
    with atomic_path(out / "replica_record.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return record


def configure_parser(parser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, action="append",
                        help="replica to build (repeatable; default: all three)")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder; each dataset goes to OUT/<dataset>/")
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out}: is a file, not a folder")
    for dataset in args.dataset or DATASETS:
        build(dataset, args.out / dataset, args.seed)
        print(f"replica {dataset} -> {args.out / dataset}")
    return 0
