"""``mlnb report-segment``: every (arm, fold)'s held-out metrics in one Markdown report with figures
(:func:`mlnb.segment.report.write_report`).

    mlnb report-segment results/segment/*/fold*/metrics.json --out results/reports/segmentation.md \\
        --figures results/reports/segmentation --seed 20170601
"""

from __future__ import annotations

from pathlib import Path

from mlnb import tracking
from mlnb.io import Folder, check_outputs
from mlnb.segment.report import REPORT_FIGURES, write_report


def configure_parser(parser) -> None:
    parser.add_argument("metrics", nargs="+", type=Path, help="metrics.json of each (arm, fold)")
    parser.add_argument("--out", type=Path, required=True, help="Markdown report to write")
    parser.add_argument("--figures", type=Path, required=True, help="folder for the report's PNG figures")
    parser.add_argument("--seed", type=int, default=0, help="master seed (the bootstrap's resamples)")
    tracking.add_tracking_arguments(parser)


def run(args) -> int:
    check_outputs({"METRICS": args.metrics}, {"--out": args.out, "--figures": Folder(args.figures, REPORT_FIGURES)})
    result = write_report(args.metrics, args.out, args.figures, args.seed, tracking.TrackingOptions.from_args(args))
    arms = ", ".join(f"{arm} {row['dice']['mean']:.3f}" for arm, row in result["summary"].items())
    print(f"segmentation report (mean Dice: {arms}) -> {args.out}")
    return 0
