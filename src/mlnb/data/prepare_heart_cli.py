"""``mlnb prepare-heart``: safely extract the MSD heart archive and index its image/label pairs
(:func:`mlnb.data.msd.prepare`)."""

from __future__ import annotations

from pathlib import Path

from mlnb.data import msd
from mlnb.io import Folder, check_outputs


def configure_parser(parser) -> None:
    parser.add_argument("--archive", type=Path, required=True, help="MSD task tar (e.g. Task02_Heart.tar)")
    parser.add_argument("--extract-to", type=Path, required=True, help="folder to extract into")
    parser.add_argument("--out", type=Path, required=True, help="index CSV to write")


def run(args) -> int:
    check_outputs({"--archive": args.archive}, {"--extract-to": Folder(args.extract_to), "--out": args.out})
    rows = msd.prepare(args.archive, args.extract_to, args.out)
    print(f"MSD: {len(rows)} image/label pairs checked -> {args.out}")
    return 0
