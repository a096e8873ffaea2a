"""One Markdown table of the gates' training over seeds, beside the blog's XOR run (``mlnb report-gates``:
:mod:`mlnb.scratch.report_gates_cli`).

Reads the ``<GATE>.json`` files that ``mlnb train-gates`` writes and writes the report (also
an MLflow artifact): per gate how many seeds converged, the median and range of their
iterations, and how many end with every truth-table row right; then each gate's truth tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mlnb import tracking
from mlnb.errors import DataError
from mlnb.io import atomic_path
from mlnb.scratch.gates import BLOG_XOR_ITERATIONS, GATES, INPUTS, truth_table_markdown
from mlnb.training.outputs import read_checked_json

_COUNT = {"type": "integer", "minimum": 0}
_ITERATIONS = {"type": ["number", "null"]}
#: what the report reads of a train-gates <GATE>.json
RESULT_SCHEMA = {
    "type": "object",
    "required": ["gate", "settings", "summary", "runs"],
    "properties": {
        "gate": {"enum": list(GATES)},
        "settings": {
            "type": "object",
            "required": ["layers", "transfers", "learning_rate", "momentum", "min_error", "max_iterations"],
            "properties": {"layers": {"type": "array", "items": {"type": "integer"}},
                           "transfers": {"type": "array", "items": {"type": "string"}},
                           "learning_rate": {"type": "number"}, "momentum": {"type": "number"},
                           "min_error": {"type": "number"}, "max_iterations": {"type": "integer"}},
        },
        "summary": {
            "type": "object",
            "required": ["seeds", "converged", "all_rows_right", "median_iterations", "min_iterations",
                         "max_iterations"],
            "properties": {"seeds": _COUNT, "converged": _COUNT, "all_rows_right": _COUNT,
                           "median_iterations": _ITERATIONS, "min_iterations": _ITERATIONS,
                           "max_iterations": _ITERATIONS},
        },
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["seed_index", "converged", "iterations", "error", "outputs"],
                "properties": {"seed_index": _COUNT, "converged": {"type": "boolean"}, "iterations": _COUNT,
                               "error": {"type": "number"},
                               "outputs": {"type": "array", "items": {"type": "number"},
                                           "minItems": len(INPUTS), "maxItems": len(INPUTS)}},
            },
        },
    },
}


def read_result(path: Path) -> dict:
    return read_checked_json(path, RESULT_SCHEMA, "train-gates result")


def _iterations(value) -> str:
    return "—" if value is None else f"{value:,.0f}"


def report_markdown(results: list[dict]) -> str:
    settings = results[0]["settings"]
    layers = "-".join(map(str, settings["layers"]))
    lines = [
        "# Logic gates: the from-scratch network over seeds",
        "",
        f"Network {layers} ({', '.join(settings['transfers'])}), learning rate {settings['learning_rate']}, "
        f"momentum {settings['momentum']}; each seed trains until the summed squared error is below "
        f"{settings['min_error']:g} or {settings['max_iterations']:,} iterations. "
        f"Iterations count as in the blog (its one XOR run: {BLOG_XOR_ITERATIONS:,}).",
        "",
        "| gate | converged | median iterations | range | all rows right | blog |",
        "| :--- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        summary = result["summary"]
        span = (f"{_iterations(summary['min_iterations'])} – {_iterations(summary['max_iterations'])}"
                if summary["converged"] else "—")
        blog = f"{BLOG_XOR_ITERATIONS:,}" if result["gate"] == "XOR" else "—"
        lines.append(f"| {result['gate']} | {summary['converged']}/{summary['seeds']} | "
                     f"{_iterations(summary['median_iterations'])} | {span} | "
                     f"{summary['all_rows_right']}/{summary['seeds']} | {blog} |")
    for result in results:
        lines += ["", f"## {result['gate']}: final outputs per seed", "",
                  truth_table_markdown(result["gate"], result["runs"])]
    return "\n".join(lines).rstrip() + "\n"


def report_gates(result_paths: Sequence[Path], out: Path, tracking_options: tracking.TrackingOptions) -> str:
    """Write the report of the gates' results (in the blog's order, whatever the given one) to ``out`` and log
    it; the report."""
    results = [read_result(path) for path in result_paths]
    gates = [result["gate"] for result in results]
    if len(set(gates)) != len(gates):
        raise DataError(f"{', '.join(map(str, result_paths))}: a gate appears twice ({gates})")
    order = list(GATES)
    results.sort(key=lambda result: order.index(result["gate"]) if result["gate"] in order else len(order))
    report = report_markdown(results)
    with atomic_path(out) as tmp:
        tmp.write_text(report)
    with tracking.tracked_run(tracking_options, "gates-report", params={"gates": gates}) as tracker:
        tracker.log_artifact(out)
        for result in results:
            summary = result["summary"]
            tracker.log_metrics({f"{result['gate']}.converged": summary["converged"],
                                 **({f"{result['gate']}.median_iterations": summary["median_iterations"]}
                                    if summary["median_iterations"] is not None else {})})
    return report
