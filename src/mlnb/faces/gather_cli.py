"""``mlnb gather-faces``: join aligned shards into one array, one manifest and a summary
(:func:`mlnb.faces.gather.gather`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mlnb.faces.gather import gather
from mlnb.io import Folder, check_outputs

SHARD_FILES = ("faces.npy", "manifest.csv")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", nargs="+", type=Path, metavar="SHARD_DIR",
                        help="shard directories (faces.npy + manifest.csv), in order")
    parser.add_argument("--out", type=Path, required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    check_outputs({"SHARD_DIR": [shard / name for shard in args.shards for name in SHARD_FILES]},
                  {"--out": Folder(args.out, (*SHARD_FILES, "summary.json"))})
    gather(args.shards, args.out)
    return 0
