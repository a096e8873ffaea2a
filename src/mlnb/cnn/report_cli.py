"""``mlnb report-ladder``: the CNN ladder as a Markdown table beside the blog's published accuracies
(:func:`mlnb.cnn.ladder.report_ladder`).

    mlnb report-ladder results/train/cnn/*/result.json --blog '{"sgd-1000": 0.6493}' --out cnn_ladder.md
"""

from __future__ import annotations

import json
from pathlib import Path

from mlnb import tracking
from mlnb.cnn.ladder import report_ladder
from mlnb.errors import ConfigError


def configure_parser(parser) -> None:
    parser.add_argument("results", nargs="+", type=Path, help="result.json of each variant (ladder order)")
    parser.add_argument("--blog", type=json.loads, default={}, metavar="JSON",
                        help="the blog's accuracy by variant name (cnn.blog_accuracy)")
    parser.add_argument("--timing", type=Path, action="append", default=[],
                        help="a variant's timing JSON, logged to MLflow only (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="Markdown file to write")
    tracking.add_tracking_arguments(parser)


def run(args) -> int:
    if not isinstance(args.blog, dict):
        raise ConfigError("--blog: expected a JSON mapping of variant name to accuracy (cnn.blog_accuracy)")
    results = report_ladder(args.results, args.blog, args.out, args.timing, tracking.TrackingOptions.from_args(args))
    print(f"CNN ladder of {len(results)} variants -> {args.out}")
    return 0
