"""``mlnb log-data``: statistics and previews of the prepared datasets, logged to MLflow
(:func:`mlnb.data.summary.log_data`)."""

from __future__ import annotations

import json
from pathlib import Path

from mlnb import tracking
from mlnb.data.summary import log_data
from mlnb.io import Folder, check_outputs


def configure_parser(parser) -> None:
    parser.add_argument("--mnist", type=Path, required=True, help="prepared mnist.npz")
    parser.add_argument("--celeba-index", type=Path, required=True)
    parser.add_argument("--celeba-zip", type=Path, required=True)
    parser.add_argument("--heart-index", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder for summary.json and previews")
    tracking.add_tracking_arguments(parser)


def run(args) -> int:
    check_outputs({"--mnist": args.mnist, "--celeba-index": args.celeba_index, "--celeba-zip": args.celeba_zip,
                   "--heart-index": args.heart_index}, {"--out": Folder(args.out, ("summary.json", "*_preview.png"))})
    summary = log_data(args.mnist, args.celeba_index, args.celeba_zip, args.heart_index, args.out,
                       tracking.TrackingOptions.from_args(args))
    print(json.dumps(summary, indent=2))
    return 0
