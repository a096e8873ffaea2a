"""``mlnb gather-faces``: join aligned shards into one array, one manifest and a summary
(:func:`mlnb.faces.gather.gather`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlnb.faces.gather import gather


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", nargs="+", type=Path, metavar="SHARD_DIR",
                        help="shard directories (faces.npy + manifest.csv), in order")
    parser.add_argument("--out", type=Path, required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    gather(args.shards, args.out)
    return 0
