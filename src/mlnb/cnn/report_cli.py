"""``mlnb report-ladder``: the CNN ladder as a Markdown table beside the blog's published accuracies
(:func:`mlnb.cnn.ladder.report_ladder`).

    mlnb report-ladder results/train/cnn/*/result.json --blog '{"sgd-1000": 0.6493}' --out cnn_ladder.md
"""

from __future__ import annotations

import json
from pathlib import Path

from mlnb import tracking
from mlnb.cnn.ladder import report_ladder
from mlnb.io import check_outputs
from mlnb.settings import validate_section


def configure_parser(parser) -> None:
    parser.add_argument("results", nargs="+", type=Path, help="result.json of each variant (ladder order)")
    parser.add_argument("--blog", type=json.loads, default={}, metavar="JSON",
                        help="the blog's accuracy by variant name (cnn.blog_accuracy)")
    parser.add_argument("--timing", type=Path, action="append", default=[],
                        help="a variant's timing JSON, logged to MLflow only (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    tracking.add_tracking_arguments(parser)


def run(args) -> int:
    check_outputs({"RESULT": args.results, "--timing": args.timing}, {"--out": args.out})
    blog = validate_section("cnn", {"blog_accuracy": args.blog}, "--blog")["blog_accuracy"]
    results = report_ladder(args.results, blog, args.out, args.timing, tracking.TrackingOptions.from_args(args))
    print(f"CNN ladder of {len(results)} variants -> {args.out}")
    return 0
