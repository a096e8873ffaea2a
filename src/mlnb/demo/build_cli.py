"""``mlnb demo-data``: offline replicas of MNIST, CelebA and the MRI set
(:func:`mlnb.demo.replicas.build_replicas`)."""

from __future__ import annotations

from pathlib import Path

from mlnb.demo.replicas import DATASETS, build_replicas
from mlnb.settings import config_flag_type


def configure_parser(parser) -> None:
    parser.add_argument("--dataset", choices=DATASETS, action="append",
                        help="replica to build (repeatable; default: all three)")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder; each dataset goes to OUT/<dataset>/")
    parser.add_argument("--seed", type=config_flag_type("seed"), default=0)


def run(args) -> int:
    for folder in build_replicas(args.out, args.seed, args.dataset or DATASETS):
        print(f"replica {folder.name} -> {folder}")
    return 0
