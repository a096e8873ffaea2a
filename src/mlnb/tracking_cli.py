"""``mlnb init-tracking``: create the MLflow store and experiment once, before jobs fan out."""

from __future__ import annotations

import json
from pathlib import Path

from mlnb import tracking
from mlnb.io import atomic_path


def configure_parser(parser) -> None:
    parser.add_argument("--tracking-uri", default="default",
                        help="MLflow tracking URI ('default' = SQLite under results/mlflow)")
    parser.add_argument("--experiment", default="mlnb")
    parser.add_argument("--out", type=Path, required=True, help="JSON file recording the experiment id")


def run(args) -> int:
    uri = tracking.resolve_uri(args.tracking_uri)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    experiment_id = tracking.ensure_experiment(uri, args.experiment)
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps({"tracking_uri": uri, "experiment": args.experiment,
                                   "experiment_id": experiment_id}, indent=2) + "\n")
    return 0
