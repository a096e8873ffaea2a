"""Logic gates with the from-scratch network: the blog's XOR run, seeds, outputs, the report."""

from __future__ import annotations

import json
import operator

import mlflow
import numpy as np
import pytest

from mlnb import cli
from mlnb.errors import ConfigError
from mlnb.scratch.gates import GATES, INPUTS, summarise, train_gate, train_gates
from mlnb.scratch.gates_report import report_gates
from mlnb.scratch.settings import GatesSettings
from mlnb.tracking import TrackingOptions

SEED = 20170601


def settings(**overrides) -> GatesSettings:
    return GatesSettings.from_mapping(overrides)


def test_defaults_are_the_blogs():
    blog = settings()
    assert (blog.layers, blog.transfers) == ((2, 2, 1), ("sigmoid", "linear"))
    assert (blog.learning_rate, blog.momentum, blog.min_error, blog.max_iterations) == (0.2, 0.5, 1e-5, 100_000)
    assert blog.seeds == 10


@pytest.mark.parametrize(("gate", "function"), [
    ("XOR", operator.xor), ("AND", operator.and_), ("OR", operator.or_), ("XNOR", lambda a, b: 1 - (a ^ b)),
])
def test_truth_tables(gate, function):
    assert GATES[gate] == tuple(function(int(a), int(b)) for a, b in INPUTS)


def test_xor_converges_for_a_fixed_seed_like_the_blog():
    run = train_gate("XOR", settings(), SEED, 0)
    assert run.converged
    assert run.iterations == 1883
    assert run.error < 1e-5
    assert run.rows_right == 4
    np.testing.assert_allclose(run.outputs, GATES["XOR"], atol=0.01)
    # the curve: every log_every iterations, then the converged one; error before, rows right after the update
    assert run.curve_steps.tolist() == [*range(0, 1883, 100), 1883]
    assert run.curve_errors[-1] == run.error
    assert np.all(np.diff(run.curve_errors[2:]) < 0)


def test_seeds_are_reproducible_and_distinct():
    short = settings(max_iterations=300, log_every=50)
    first, again, other = (train_gate("AND", short, SEED, index) for index in (0, 0, 1))
    assert first.outputs == again.outputs and first.iterations == again.iterations
    assert first.outputs != other.outputs


def test_a_seed_that_runs_out_of_iterations_is_not_converged():
    run = train_gate("XNOR", settings(max_iterations=50, log_every=20), SEED, 0)
    assert not run.converged
    assert run.iterations == 50
    assert run.curve_steps.tolist() == [0, 20, 40, 50]


def test_summary_counts_converged_seeds_only():
    runs = [train_gate("OR", settings(max_iterations=limit), SEED, 0) for limit in (10, 100_000)]
    runs.append(train_gate("OR", settings(), SEED, 2))
    summary = summarise(runs)
    iterations = sorted(run.iterations for run in runs[1:])
    assert summary == {"seeds": 3, "converged": 2, "all_rows_right": summary["all_rows_right"],
                       "median_iterations": float(np.mean(iterations)), "min_iterations": iterations[0],
                       "max_iterations": iterations[1]}
    assert summarise(runs[:1])["median_iterations"] is None


def test_layers_must_fit_a_gate():
    with pytest.raises(ConfigError, match=r"gates\.layers \[3, 2, 1\]: a gate has 2 inputs and 1 output"):
        train_gate("XOR", settings(layers=[3, 2, 1]), SEED, 0)


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"gates\.transfers\[1\]: 'softmax' is not one of"):
        settings(transfers=["sigmoid", "softmax"])


@pytest.fixture()
def uri(mlflow_uri):
    return mlflow_uri


def test_train_gates_and_the_report_write_their_files_and_log_the_curves(tmp_path, uri):
    out = tmp_path / "gates"
    common = ["--seed", str(SEED), "--out", str(out), "--seeds", "2", "--max-iterations", "3000",
              "--tracking-uri", uri, "--experiment", "tests"]
    for gate in ("XOR", "AND"):
        assert cli.main(["train-gates", "--gate", gate, *common]) == 0
    names = {path.name for path in out.iterdir()}
    assert names == {f"{gate}{suffix}" for gate in ("XOR", "AND")
                     for suffix in (".json", "_curves.npz", "_curves.png", "_truth_tables.md")}
    result = json.loads((out / "XOR.json").read_text())
    assert result["settings"]["max_iterations"] == 3000 and len(result["runs"]) == 2
    assert result["runs"][0]["iterations"] == 1883 and result["summary"]["converged"] >= 1
    with np.load(out / "XOR_curves.npz") as curves:
        assert curves["seed_0_steps"][-1] == 1883

    client = mlflow.MlflowClient(uri)
    runs = {run.info.run_name: run for run in client.search_runs(client.get_experiment_by_name("tests").experiment_id)}
    xor = runs["gates-xor"]
    history = client.get_metric_history(xor.info.run_id, "error/seed_0")
    assert [point.step for point in history] == [*range(0, 1883, 100), 1883]
    assert xor.data.params["max_iterations"] == "3000"
    assert {a.path for a in client.list_artifacts(xor.info.run_id)} >= {"XOR.json", "XOR_curves.png"}
    # the truth table is the run's dataset: the same table gives the same digest, another gate another one
    datasets = {name: run.inputs.dataset_inputs for name, run in runs.items()}
    [xor_input], [and_input] = datasets["gates-xor"], datasets["gates-and"]
    assert (xor_input.dataset.name, xor_input.dataset.source_type) == ("xor_truth_table", "code")
    assert [(tag.key, tag.value) for tag in xor_input.tags] == [("mlflow.data.context", "training")]
    assert json.loads(xor_input.dataset.profile) == {"inputs_shape": [4, 2], "targets_shape": [4]}
    assert xor_input.dataset.digest != and_input.dataset.digest

    report = tmp_path / "report.md"
    assert cli.main(["report-gates", str(out / "AND.json"), str(out / "XOR.json"), "--out", str(report),
                     "--tracking-uri", uri, "--experiment", "tests"]) == 0
    text = report.read_text()
    xor_row = next(line for line in text.splitlines() if line.startswith("| XOR |"))
    assert "14,543" in xor_row and "1,883" in xor_row
    assert text.index("| XOR |") < text.index("| AND |")  # the blog's order, whatever the argument order
    assert "## AND: final outputs per seed" in text
    report_run = client.search_runs([xor.info.experiment_id], "attributes.run_name = 'gates-report'")[0]
    assert [a.path for a in client.list_artifacts(report_run.info.run_id)] == ["report.md"]



def test_train_gates_and_the_report_from_python_write_what_the_commands_write(tmp_path):
    short = settings(seeds=2, max_iterations=300, log_every=50)
    result = train_gates("AND", short, SEED, tmp_path / "python", TrackingOptions())
    assert result == json.loads((tmp_path / "python" / "AND.json").read_text())
    assert result["settings"] == short.as_dict() and len(result["runs"]) == 2
    report = report_gates([tmp_path / "python" / "AND.json"], tmp_path / "python" / "report.md", TrackingOptions())
    assert report == (tmp_path / "python" / "report.md").read_text() and "| AND | " in report

    cli_out = tmp_path / "cli"
    assert cli.main(["train-gates", "--gate", "AND", "--seed", str(SEED), "--out", str(cli_out), "--seeds", "2",
                     "--max-iterations", "300", "--log-every", "50"]) == 0
    assert cli.main(["report-gates", str(cli_out / "AND.json"), "--out", str(cli_out / "report.md")]) == 0
    for name in ("AND.json", "AND_curves.npz", "AND_curves.png", "AND_truth_tables.md", "report.md"):
        assert (tmp_path / "python" / name).read_bytes() == (cli_out / name).read_bytes(), name

def test_report_refuses_a_file_that_is_not_a_gate_result(tmp_path, caplog):
    (tmp_path / "other.json").write_text('{"gate": "XOR"}')
    assert cli.main(["report-gates", str(tmp_path / "other.json"), "--out", str(tmp_path / "r.md")]) == 2
    assert "other.json: not a train-gates result (missing runs, settings, summary)" in caplog.text
    assert not (tmp_path / "r.md").exists()
