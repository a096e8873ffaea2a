"""``mlnb init-tracking``: create the MLflow store and experiment before jobs fan out
(:func:`mlnb.init_tracking.init_tracking`)."""

from __future__ import annotations

from pathlib import Path

from mlnb import tracking
from mlnb.init_tracking import init_tracking
from mlnb.io import check_outputs
from mlnb.settings import section_schema


def configure_parser(parser) -> None:
    default_timeout = section_schema("mlflow")["properties"]["timeout"]["default"]
    parser.add_argument("--tracking-uri", default="default",
                        help="MLflow tracking URI ('default' = SQLite under results/mlflow)")
    parser.add_argument("--experiment", default="mlnb")
    parser.add_argument("--timeout", type=float, default=default_timeout,
                        help=f"seconds to wait for a tracking server (default {default_timeout})")
    parser.add_argument("--out", type=Path, required=True, help="JSON file recording the experiment id")


def run(args) -> int:
    store = tracking.resolve_uri(args.tracking_uri)
    check_outputs({"--tracking-uri": store and tracking.sqlite_path(store)}, {"--out": args.out})
    init_tracking(args.tracking_uri, args.experiment, args.timeout, args.out)
    return 0
