"""``mlnb prepare-celeba``: check the CelebA zip against its annotation files and write one index
(:func:`mlnb.data.celeba.prepare`)."""

from __future__ import annotations

from pathlib import Path

from mlnb.data import celeba
from mlnb.data.celeba_format import FILES
from mlnb.io import check_outputs


def configure_parser(parser) -> None:
    parser.add_argument("--images", type=Path, required=True, help=FILES["images"])
    parser.add_argument("--landmarks", type=Path, required=True, help=FILES["landmarks"])
    parser.add_argument("--partition", type=Path, required=True, help=FILES["partition"])
    parser.add_argument("--limit", type=int, default=None, help="keep only the first N images (sorted by name)")
    parser.add_argument("--out", type=Path, required=True, help="index CSV to write")


def run(args) -> int:
    check_outputs({"--images": args.images, "--landmarks": args.landmarks, "--partition": args.partition},
                  {"--out": args.out})
    counts = celeba.prepare(args.images, args.landmarks, args.partition, args.out, args.limit)
    print(f"CelebA: {counts} -> {args.out}")
    return 0
