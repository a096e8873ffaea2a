"""``mlnb report-gates``: one Markdown report of the gates over seeds, beside the blog's XOR run
(:func:`mlnb.scratch.gates_report.report_gates`).

    mlnb report-gates results/train/gates/*.json --out results/train/gates/report.md
"""

from __future__ import annotations

from pathlib import Path

from mlnb import tracking
from mlnb.io import check_outputs
from mlnb.scratch.gates_report import report_gates


def configure_parser(parser) -> None:
    parser.add_argument("results", nargs="+", type=Path, help="<GATE>.json files written by mlnb train-gates")
    parser.add_argument("--out", type=Path, required=True, help="the Markdown report to write")
    tracking.add_tracking_arguments(parser)


def run(args) -> int:
    check_outputs({"RESULT": args.results}, {"--out": args.out})
    print(report_gates(args.results, args.out, tracking.TrackingOptions.from_args(args)))
    return 0
