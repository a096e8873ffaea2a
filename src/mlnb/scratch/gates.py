"""The from-scratch network learns a logic gate, like the blog, over several seeds (``mlnb train-gates``:
:mod:`mlnb.scratch.train_gates_cli`).

The blog's XOR (post 09): a 2-2-1 network, sigmoid hidden layer, linear output, learning
rate 0.2, momentum 0.5, trained on the whole truth table until the summed squared error is
below 1e-5 or 100,000 iterations have run; its one run stopped at iteration 14,543. Here
each seed ``k`` starts from weights drawn by ``mlnb.rng.generator(seed, "gates", gate, k)``,
and :func:`train_gates` writes, into ``out``: ``<GATE>.json`` (settings, and per seed whether it
converged, its iterations, final error and truth table), ``<GATE>_curves.npz`` (the error
and the truth-table rows right every ``log_every`` iterations) and ``<GATE>_curves.png``;
the same curves are logged to MLflow with ``step`` = iteration.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from mlnb import tracking
from mlnb.errors import ConfigError
from mlnb.io import atomic_path
from mlnb.rng import generator
from mlnb.scratch.network import Network
from mlnb.scratch.settings import GatesSettings
from mlnb.training.outputs import write_json

#: The truth-table rows in the blog's order.
INPUTS = np.array([[0, 0], [1, 1], [0, 1], [1, 0]], dtype=np.float64)
#: Each gate's output for the rows of INPUTS.
GATES = {
    "XOR": (0, 0, 1, 1),
    "AND": (0, 1, 0, 0),
    "OR": (0, 1, 1, 1),
    "XNOR": (1, 1, 0, 0),
}
#: The blog's XOR run (post 09): iterations to a summed squared error of 1e-5.
BLOG_XOR_ITERATIONS = 14_543
#: what train_gates writes into its folder for a gate: GATE.json, GATE_curves.npz ...
RESULT_SUFFIXES = (".json", "_curves.npz", "_curves.png", "_truth_tables.md")


@dataclasses.dataclass(frozen=True)
class GateRun:
    """One seed's training: the outcome, the final truth table and the logged curve."""

    seed_index: int
    converged: bool
    iterations: int
    error: float
    outputs: tuple[float, ...]
    curve_steps: np.ndarray
    curve_errors: np.ndarray
    curve_rows_right: np.ndarray

    @property
    def rows_right(self) -> int:
        return int(self.curve_rows_right[-1])

    def summary(self) -> dict:
        return {"seed_index": self.seed_index, "converged": self.converged, "iterations": self.iterations,
                "error": self.error, "outputs": list(self.outputs), "rows_right": self.rows_right}


def truth_table_targets(gate: str) -> np.ndarray:
    try:
        return np.array(GATES[gate], dtype=np.float64)[:, None]
    except KeyError:
        raise ConfigError(f"unknown gate {gate!r}; choose from {', '.join(GATES)}") from None


def rows_right(outputs: np.ndarray, targets: np.ndarray) -> int:
    """Truth-table rows whose output rounds to the target (is within 0.5 of it)."""
    return int(np.sum(np.abs(outputs - targets) < 0.5))


def train_gate(gate: str, settings: GatesSettings, seed: int, seed_index: int, on_log=None) -> GateRun:
    """Train one seed the blog's way: ``iterations`` is the first iteration whose error is below ``min_error``.

    ``on_log(iteration, error, rows_right)`` is called every ``log_every`` iterations and at the end,
    with the error before that iteration's update and the rows right after it.
    """
    targets = truth_table_targets(gate)
    if settings.layers[0] != INPUTS.shape[1] or settings.layers[-1] != 1:
        raise ConfigError(f"gates.layers {list(settings.layers)}: a gate has 2 inputs and 1 output, so the "
                          "layers must start with 2 and end with 1")
    net = Network.initialise(settings.layers, settings.transfers, generator(seed, "gates", gate, seed_index))
    steps, errors, right = [], [], []
    converged = False
    for iteration in range(settings.max_iterations + 1):
        error = float(net.train_step(INPUTS, targets, settings.learning_rate, settings.momentum))
        converged = error < settings.min_error
        if converged or iteration % settings.log_every == 0 or iteration == settings.max_iterations:
            correct = rows_right(net.forward(INPUTS), targets)
            steps.append(iteration)
            errors.append(error)
            right.append(correct)
            if on_log is not None:
                on_log(iteration, error, correct)
        if converged or not np.isfinite(error):
            break
    outputs = net.forward(INPUTS)[:, 0]
    return GateRun(seed_index, converged, iteration, error, tuple(float(v) for v in outputs),
                   np.array(steps), np.array(errors), np.array(right))


def summarise(runs: list[GateRun]) -> dict:
    """How many seeds converged; median and range of their iterations (None when none did)."""
    iterations = [run.iterations for run in runs if run.converged]
    return {
        "seeds": len(runs),
        "converged": len(iterations),
        "all_rows_right": sum(run.rows_right == len(INPUTS) for run in runs),
        "median_iterations": float(np.median(iterations)) if iterations else None,
        "min_iterations": min(iterations) if iterations else None,
        "max_iterations": max(iterations) if iterations else None,
    }


def truth_table_markdown(gate: str, runs: list[dict]) -> str:
    """One row per seed (``GateRun.summary()``): iterations, final error and the output for each truth-table row."""
    rows = [f"[{int(a)} {int(b)}] -> {t}" for (a, b), t in zip(INPUTS, GATES[gate], strict=True)]
    lines = [f"| seed | converged | iterations | error | {' | '.join(rows)} |",
             "| ---: | :---: | ---: | ---: |" + " ---: |" * len(rows)]
    for run in runs:
        outputs = " | ".join(f"{value:.5f}" for value in run["outputs"])
        lines.append(f"| {run['seed_index']} | {'yes' if run['converged'] else 'no'} | {run['iterations']:,} | "
                     f"{run['error']:.3g} | {outputs} |")
    return "\n".join(lines) + "\n"


def plot_curves(gate: str, runs: list[GateRun], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for run in runs:
        axes.semilogy(run.curve_steps, np.maximum(run.curve_errors, 1e-12), label=f"seed {run.seed_index}")
    if gate == "XOR":
        axes.axvline(BLOG_XOR_ITERATIONS, color="grey", linestyle=":", label=f"blog ({BLOG_XOR_ITERATIONS:,})")
    axes.set(xlabel="iteration", ylabel="summed squared error", title=f"{gate}: error per iteration")
    axes.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp)
    plt.close(figure)


def write_outputs(gate: str, settings: GatesSettings, seed: int, runs: list[GateRun], out: Path) -> dict:
    result = {"gate": gate, "seed": seed, "settings": settings.as_dict(), "blog_xor_iterations": BLOG_XOR_ITERATIONS,
              "summary": summarise(runs), "runs": [run.summary() for run in runs],
              "truth_table_inputs": INPUTS.astype(int).tolist(), "truth_table_targets": list(GATES[gate])}
    with atomic_path(out / f"{gate}_curves.npz") as tmp:
        np.savez(tmp, **{f"seed_{run.seed_index}_{name}": getattr(run, f"curve_{name}") for run in runs
                         for name in ("steps", "errors", "rows_right")})
    plot_curves(gate, runs, out / f"{gate}_curves.png")
    with atomic_path(out / f"{gate}_truth_tables.md") as tmp:
        tmp.write_text(f"# {gate}: final truth tables\n\n{truth_table_markdown(gate, result['runs'])}")
    write_json(out / f"{gate}.json", result, sort_keys=False)
    return result


def train_gates(gate: str, settings: GatesSettings, seed: int, out: Path,
                tracking_options: tracking.TrackingOptions) -> dict:
    """Train ``settings.seeds`` seeds on ``gate``, write the outputs into ``out`` and log the curves; the result
    written to ``<GATE>.json``."""
    params = {"gate": gate, "seed": seed, **settings.defining()}
    with tracking.tracked_run(tracking_options, f"gates-{gate.lower()}", params=params,
                              tags={"mlnb.model": "backprop", "mlnb.gate": gate}) as tracker:
        tracker.log_array_dataset(f"{gate.lower()}_truth_table", {"inputs": INPUTS, "targets": np.array(GATES[gate])},
                                  "training", tracking_options.source)
        runs = []
        for index in range(settings.seeds):
            def log(iteration, error, correct, index=index):
                tracker.log_metrics({f"error/seed_{index}": error,
                                     f"rows_right_share/seed_{index}": correct / len(INPUTS)}, step=iteration)

            runs.append(train_gate(gate, settings, seed, index, on_log=log))
        result = write_outputs(gate, settings, seed, runs, out)
        tracker.log_metrics({key: value for key, value in result["summary"].items() if value is not None})
        for suffix in RESULT_SUFFIXES:
            tracker.log_artifact(out / f"{gate}{suffix}")
    return result
