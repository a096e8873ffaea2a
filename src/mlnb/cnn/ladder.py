"""The CNN ladder as a Markdown table beside the blog's published accuracies (``mlnb report-ladder``:
:mod:`mlnb.cnn.report_cli`).

The table holds only what the same config and seed reproduce (settings, test
accuracy); wall times vary from run to run, so they go to the MLflow run alone
(their timing files, logged as ``timing.json``), never into the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlnb import tracking
from mlnb.io import atomic_path
from mlnb.training.outputs import read_checked_json

COLUMNS = ("variant", "optimizer", "steps", "batch", "epochs", "schedule", "batch norm", "dropout",
           "test accuracy", "blog", "difference")


#: what the report reads of a train-cnn result.json
RESULT_SCHEMA = {
    "type": "object",
    "required": ["variant", "settings", "test_accuracy", "epochs", "train_images", "test_images"],
    "properties": {
        "variant": {"type": "string"},
        "settings": {
            "type": "object",
            "required": ["optimizer", "steps", "batch_size", "schedule", "batch_norm", "dropout"],
            "properties": {"optimizer": {"type": "string"}, "steps": {"type": "integer"},
                           "batch_size": {"type": "integer"}, "schedule": {"type": "string"},
                           "batch_norm": {"type": "boolean"}, "dropout": {"type": "number"}},
        },
        "test_accuracy": {"type": "number"},
        "epochs": {"type": "number"},
        "train_images": {"type": "integer"},
        "test_images": {"type": "integer"},
        "device": {"type": "string"},
    },
}

#: what the report reads of a train-cnn timing file (the rest is logged as it is)
TIMING_SCHEMA = {"type": "object", "required": ["variant"], "properties": {"variant": {"type": "string"}}}


def read_result(path: Path) -> dict[str, Any]:
    return read_checked_json(path, RESULT_SCHEMA, "train-cnn result")


def read_timing(path: Path) -> dict[str, Any]:
    """A variant's timing file (``--timing`` of train-cnn), logged by the report."""
    return read_checked_json(path, TIMING_SCHEMA, "train-cnn timing file")


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


def report_ladder(result_paths: Sequence[Path], blog: dict[str, float], out: Path, timing_paths: Sequence[Path],
                  tracking_options: tracking.TrackingOptions) -> list[dict[str, Any]]:
    """Write the ladder of the ``result.json`` files (in ladder order) to ``out``, log it with the variants'
    accuracies and (to MLflow only) their timing files; the results read."""
    results = [read_result(path) for path in result_paths]
    timings = {timing["variant"]: timing for timing in map(read_timing, timing_paths)}
    report = ladder_report(results, blog)
    with atomic_path(out) as tmp:
        tmp.write_text(report)
    inputs = {result["variant"]: path for result, path in zip(results, result_paths, strict=True)}
    with tracking.tracked_run(tracking_options, "cnn-ladder", params={"variants": list(inputs)}, inputs=inputs,
                              input_context="evaluation", tags={"mlnb.rule": "report_ladder"}) as tracker:
        tracker.log_metrics({f"test_accuracy.{r['variant']}": r["test_accuracy"] for r in results})
        tracker.log_artifact(out)
        if timings:
            tracker.log_dict(timings, "timing.json")
    return results
