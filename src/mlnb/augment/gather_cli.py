"""``mlnb gather-augment``: one manifest of all augmented copies, logged to MLflow with their previews
(:func:`mlnb.augment.gather.gather_augment`)."""

from __future__ import annotations

from pathlib import Path

from mlnb import tracking
from mlnb.augment.gather import gather_augment
from mlnb.io import check_outputs


def configure_parser(parser) -> None:
    parser.add_argument("records", nargs="+", type=Path, help="the <name>_aug<k>.json records of every copy")
    parser.add_argument("--manifest", type=Path, required=True, help="CSV to write, one row per copy")
    parser.add_argument("--max-previews", type=int, default=20,
                        help="previews logged to MLflow (copy 0 of the first items)")
    tracking.add_tracking_arguments(parser)


def run(args) -> int:
    check_outputs({"RECORD": args.records}, {"--manifest": args.manifest})
    rows = gather_augment(args.records, args.manifest, args.max_previews, tracking.TrackingOptions.from_args(args))
    print(f"{len(rows)} augmented copies of {len({row['item'] for row in rows})} items -> {args.manifest}")
    return 0
