"""``mlnb report-ladder``: the CNN ladder as a Markdown table beside the blog's published accuracies.

    mlnb report-ladder results/train/cnn/*/result.json --blog '{"sgd-1000": 0.6493}' --out cnn_ladder.md

The table holds only what the same config and seed reproduce (settings, test
accuracy); wall times vary from run to run, so they go to the MLflow run alone
(``--timing`` files, logged as ``timing.json``), never into the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlnb import tracking
from mlnb.errors import ConfigError, DataError
from mlnb.io import atomic_path

COLUMNS = ("variant", "optimizer", "steps", "batch", "epochs", "schedule", "batch norm", "dropout",
           "test accuracy", "blog", "difference")


def read_result(path: Path) -> dict[str, Any]:
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read the CNN result ({error})") from None
    missing = {"variant", "settings", "test_accuracy", "epochs", "train_images", "test_images"} - set(result)
    if missing:
        raise DataError(f"{path}: not a train-cnn result (missing {', '.join(sorted(missing))})")
    return result


def ladder_table(results: list[dict[str, Any]], blog: dict[str, float]) -> str:
    rows = []
    for result in results:
        settings, ours = result["settings"], result["test_accuracy"]
        theirs = blog.get(result["variant"])
        rows.append((
            f"`{result['variant']}`", settings["optimizer"], f"{settings['steps']:,}", str(settings["batch_size"]),
            f"{result['epochs']:.2f}", settings["schedule"], "yes" if settings["batch_norm"] else "no",
            f"{settings['dropout']:g}", f"{100 * ours:.2f} %",
            "—" if theirs is None else f"{100 * theirs:.2f} %",
            "—" if theirs is None else f"{100 * (ours - theirs):+.2f} pt",
        ))
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def ladder_report(results: list[dict[str, Any]], blog: dict[str, float]) -> str:
    sizes = sorted({(result["train_images"], result["test_images"]) for result in results})
    data = "; ".join(f"{train:,} training and {test:,} test digits" for train, test in sizes)
    devices = ", ".join(sorted({result.get("device", "?") for result in results}))
    return (
        "# The MNIST CNN ladder\n\n"
        "The blog's CNN (07-cnn-tensorflow: two 3x3 convolutions of 16 kernels, each followed by 2x2 "
        "max-pooling, a dense layer of 1024, 10 logits), trained by the pipeline's `train_cnn_*` rules, "
        "beside the test accuracies the blog published (60,000 training and 10,000 test digits).\n\n"
        f"This run: {data}; device {devices}.\n\n"
        f"{ladder_table(results, blog)}\n\n"
        "Wall times (time to accuracy, images/s) vary from run to run: they are in each variant's "
        "MLflow run and its timing file under `results/benchmarks/train/cnn/`, not here.\n"
    )


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
    results = [read_result(path) for path in args.results]
    report = ladder_report(results, args.blog)
    with atomic_path(args.out) as tmp:
        tmp.write_text(report)
    inputs = {result["variant"]: path for result, path in zip(results, args.results, strict=True)}
    with tracking.tracked_run(args, "cnn-ladder", params={"variants": list(inputs)}, inputs=inputs,
                              tags={"mlnb.rule": "report_ladder"}) as tracker:
        tracker.log_metrics({f"test_accuracy.{r['variant']}": r["test_accuracy"] for r in results})
        tracker.log_artifact(args.out)
        if args.timing:
            timings = {}
            for path in args.timing:
                timing = json.loads(path.read_text())
                timings[timing["variant"]] = timing
            tracker.log_dict(timings, "timing.json")
    print(f"CNN ladder of {len(results)} variants -> {args.out}")
    return 0
